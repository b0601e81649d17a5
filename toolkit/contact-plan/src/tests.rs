use proptest::prelude::*;

use super::*;

const EPOCH: u64 = 1_800_000_000_000;

#[test]
fn an_ion_file_reads_as_it_is() {
    let text = "\
## begin ionadmin
1 1 ''
s
@ 2026/12/07-00:00:00
a contact +0 +28800 1 2 250000
a contact +44400 +73200 1 2 250000 0.9
a contact +0 +28800 2 1 250000
a range +0 +2592000 1 2 750   # Mars, 12.5 min
m horizon +0
## end ionadmin
";
    let plan = ContactPlan::parse(text, EPOCH).unwrap();
    // 2026-12-07T00:00:00Z
    let day = 1_796_601_600_000;
    assert_eq!(plan.contacts.len(), 3);
    assert_eq!(plan.contacts[0].start_ms, day);
    assert_eq!(plan.contacts[0].end_ms, day + 28_800_000);
    assert_eq!(plan.contacts[1].confidence, 0.9);
    let link = plan.link(1, 2);
    assert_eq!(link.windows().len(), 2);
    assert_eq!(link.windows()[0].owlt_ms, 750_000);
    // The range holds both ways.
    assert_eq!(plan.link(2, 1).windows()[0].owlt_ms, 750_000);
    assert!(plan.link(1, 3).is_empty());
}

#[test]
fn relative_times_count_from_the_epoch_until_an_at_line() {
    let plan = ContactPlan::parse("a contact +10 +20.5 1 2 100\n", EPOCH).unwrap();
    assert_eq!(plan.contacts[0].start_ms, EPOCH + 10_000);
    assert_eq!(plan.contacts[0].end_ms, EPOCH + 20_500);
}

#[test]
fn link_answers_up_next_and_up_time() {
    let w = |s: u64, e: u64| Window {
        start_ms: s,
        end_ms: e,
        rate: 1000,
        owlt_ms: 0,
    };
    let link = Link::new(vec![w(100, 200), w(300, 400)]);
    assert_eq!(link.at(99), None);
    assert_eq!(link.at(100), Some(&w(100, 200)));
    assert_eq!(link.at(199), Some(&w(100, 200)));
    assert_eq!(link.at(200), None);
    assert_eq!(link.next(200), Some(&w(300, 400)));
    assert_eq!(link.next(150), Some(&w(100, 200)));
    assert_eq!(link.next(400), None);
    assert_eq!(link.up_ms(0, 1000), 200);
    assert_eq!(link.up_ms(150, 350), 100);
    assert_eq!(link.up_ms(250, 260), 0);
    assert_eq!(link.after_up(0, 150), Some(350));
    assert_eq!(link.after_up(150, 50), Some(200));
    assert_eq!(link.after_up(0, 201), None);
    assert_eq!(w(100, 200).bytes_left(150), 50);
    // Found by the contact_plan fuzz target: no up-time yet is reached at
    // once, not at the next window's opening.
    assert_eq!(link.after_up(250, 0), Some(250));
    assert_eq!(link.after_up(0, 0), Some(0));
}

#[test]
fn a_fractional_light_time_is_taken() {
    let plan =
        ContactPlan::parse("a range +0 +10 1 2 0.052\na range +0 +10 2 1 750\n", EPOCH).unwrap();
    assert_eq!(plan.owlt_ms(1, 2, EPOCH + 1), Some(52));
    assert_eq!(plan.owlt_ms(2, 1, EPOCH + 1), Some(750_000));
}

#[test]
fn errors_name_the_line_and_what_was_wrong() {
    let cases = [
        ("a contact +0 +10 1 2\n", 1, "a contact FROM-TIME"),
        ("\na contact +10 +5 1 2 9\n", 2, "is not after"),
        ("a contact +0 +10 1 two 9\n", 1, "node `two`"),
        (
            "a contact 2026/13/01-00:00:00 +10 1 2 9\n",
            1,
            "neither +SECONDS",
        ),
        ("a contact +0 +10 1 2 9 1.5\n", 1, "confidence"),
        ("a range +0 +10 1 2 -3\n", 1, "one-way light time"),
        ("a range +0 +10 1 2 inf\n", 1, "one-way light time"),
        (
            "a range +0 +10 1 2 1e12\n",
            1,
            "one-way light time too large",
        ),
        (
            "a contcat +0 +10 1 2 9\n",
            1,
            "only `a contact` and `a range`",
        ),
        ("contact +0 +10 1 2 9\n", 1, "not a contact plan command"),
        ("@ +1e400\n", 1, "not +SECONDS"),
    ];
    for (text, line, what) in cases {
        let e = ContactPlan::parse(text, EPOCH).unwrap_err();
        assert_eq!(e.line, line, "{text:?}: {e}");
        assert!(e.to_string().contains(what), "{text:?}: {e}");
    }
    let e =
        ContactPlan::parse("a contact +0 +10 1 2 9\na contact +5 +20 1 2 9\n", EPOCH).unwrap_err();
    assert!(e.message.contains("overlap"), "{e}");
    // The other direction may overlap: it is another link.
    ContactPlan::parse("a contact +0 +10 1 2 9\na contact +5 +20 2 1 9\n", EPOCH).unwrap();
}

#[test]
fn hostile_plans_cost_bounded_memory() {
    let long = format!("# {}\n", "x".repeat(MAX_LINE));
    assert!(ContactPlan::parse(&long, EPOCH)
        .unwrap_err()
        .message
        .contains("longer than"));
    let mut many = String::new();
    for i in 0..=MAX_ENTRIES as u64 {
        many.push_str(&format!("a range +{i} +{} 1 2 1\n", i + 1));
    }
    let e = ContactPlan::parse(&many, EPOCH).unwrap_err();
    assert!(e.message.contains("more than"), "{e}");
    assert!(ContactPlan::parse("a contact +99999999999 +99999999999.5 1 2 1\n", EPOCH).is_ok());
}

#[test]
fn absolute_times_match_the_calendar() {
    assert_eq!(absolute("1970/01/01-00:00:00"), Some(0));
    assert_eq!(absolute("2000/01/01-00:00:00"), Some(946_684_800_000));
    assert_eq!(absolute("2024/02/29-12:00:00"), Some(1_709_208_000_000));
    assert_eq!(absolute("2024/02/29"), None);
    assert_eq!(absolute("1969/12/31-23:59:59"), None);
}

proptest! {
    /// Whatever the windows, `up_ms` and `after_up` agree, and `at` agrees
    /// with a linear scan.
    #[test]
    fn link_queries_agree(mut starts in proptest::collection::vec((0u64..10_000, 1u64..500), 0..20), a in 0u64..12_000, up in 0u64..3000, t in 0u64..12_000) {
        starts.sort();
        let mut windows = Vec::new();
        let mut last_end = 0;
        for (s, len) in starts {
            let s = s.max(last_end);
            windows.push(Window { start_ms: s, end_ms: s + len, rate: 1, owlt_ms: 0 });
            last_end = s + len;
        }
        let link = Link::new(windows.clone());
        let linear = windows.iter().find(|w| w.start_ms <= t && t < w.end_ms);
        prop_assert_eq!(link.at(t), linear);
        if let Some(end) = link.after_up(a, up) {
            prop_assert_eq!(link.up_ms(a, end), up);
            // The earliest such instant.
            prop_assert!(end == a || link.up_ms(a, end - 1) < up);
        } else {
            prop_assert!(link.up_ms(a, u64::MAX / 2) < up);
        }
    }

    /// Any text: an answer, never a panic.
    #[test]
    fn any_text_parses_or_is_refused(text in ".{0,300}") {
        let _ = ContactPlan::parse(&text, EPOCH);
    }

    /// A plan written out and read back is the same plan.
    #[test]
    fn absolute_times_format_and_read_back(secs in 0u64..253_402_300_799) {
        let text = format_time(secs * 1000 + 999);
        let plan = ContactPlan::parse(&format!("@ {text}\na contact +0 +1 1 2 9\n"), 0).unwrap();
        prop_assert_eq!(plan.contacts[0].start_ms, secs * 1000, "{}", text);
    }

    #[test]
    fn written_plans_read_back(entries in proptest::collection::vec((0u64..100_000, 1u64..10_000, 0u64..5, 0u64..5, 0u64..1_000_000), 0..30)) {
        let mut text = String::new();
        let mut next_start: HashMap<(u64, u64), u64> = HashMap::new();
        let mut expected = Vec::new();
        for (s, len, from, to, rate) in entries {
            let s = s.max(*next_start.get(&(from, to)).unwrap_or(&0));
            next_start.insert((from, to), s + len);
            text.push_str(&format!("a contact +{s} +{} {from} {to} {rate}\n", s + len));
            expected.push((EPOCH + s * 1000, EPOCH + (s + len) * 1000, from, to, rate));
        }
        let plan = ContactPlan::parse(&text, EPOCH).unwrap();
        let got: Vec<_> = plan.contacts.iter().map(|c| (c.start_ms, c.end_ms, c.from, c.to, c.rate)).collect();
        prop_assert_eq!(got, expected);
    }
}
