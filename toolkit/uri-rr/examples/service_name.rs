//! The name the Earth gateway looks up for a far mail domain.
//! Run with `cargo run -p deepmail-uri-rr --example service_name`.
fn main() -> Result<(), deepmail_uri_rr::NameError> {
    let name = deepmail_uri_rr::bsmtp_service_name("moon.example")?;
    assert_eq!(name.to_string(), "_bsmtp._https.moon.example.");
    assert_eq!(name, "_BSMTP._HTTPS.MOON.EXAMPLE".parse()?);
    Ok(())
}
