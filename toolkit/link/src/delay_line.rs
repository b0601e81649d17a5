//! A delay line for datagrams: items go in with their delivery time and
//! come out at that time, in time order, ties in the order they went in —
//! so without jitter a direction keeps its order, and with jitter a
//! datagram can overtake another, as on a real path.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::future::Future;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::{sleep_until, Instant};

struct Entry<T> {
    at: Instant,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl<T> Eq for Entry<T> {}

impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Entry<T> {
    /// Reversed: the earliest entry is the heap's greatest.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Hands every `(at, item)` received on `input` to `deliver` at `at`;
/// returns when `input` is closed and everything has been delivered.
pub(crate) async fn run_delay_line<T, F, Fut>(
    mut input: UnboundedReceiver<(Instant, T)>,
    mut deliver: F,
) where
    F: FnMut(T) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut heap = BinaryHeap::new();
    let mut seq = 0u64;
    let mut open = true;
    loop {
        while heap
            .peek()
            .is_some_and(|e: &Entry<T>| e.at <= Instant::now())
        {
            if let Some(entry) = heap.pop() {
                deliver(entry.item).await;
            }
        }
        let next = heap.peek().map(|e| e.at);
        if !open && next.is_none() {
            return;
        }
        tokio::select! {
            received = input.recv(), if open => match received {
                Some((at, item)) => {
                    heap.push(Entry { at, seq, item });
                    seq += 1;
                }
                None => open = false,
            },
            () = sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use tokio::sync::mpsc;

    #[tokio::test]
    async fn delivers_in_time_order_and_ties_in_arrival_order() {
        let (tx, rx) = mpsc::unbounded_channel();
        let out = Arc::new(Mutex::new(Vec::new()));
        let start = Instant::now();
        let ms = Duration::from_millis(1);
        for (delay, name) in [(60, "c"), (20, "a"), (40, "b1"), (40, "b2"), (0, "now")] {
            tx.send((start + ms * delay, name)).unwrap();
        }
        drop(tx);
        let seen = out.clone();
        run_delay_line(rx, |name| {
            let seen = seen.clone();
            async move { seen.lock().unwrap().push((name, start.elapsed())) }
        })
        .await;
        let out = out.lock().unwrap();
        let names: Vec<_> = out.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["now", "a", "b1", "b2", "c"]);
        assert!(out[4].1 >= ms * 60, "{:?}", out[4].1);
    }
}
