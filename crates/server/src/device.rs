//! The device of an event that came without one, from the request's User-Agent
//! (SPEC section 9.1), read by the `woothee` parser: phones are `mobile`, tablets
//! `tablet`, other browsers `desktop`, consoles, TVs and crawlers `other`; a request
//! from no browser (an HTTP library, a server) says nothing about a device, and its
//! events stay without one (`unknown`). The mapping is documented in docs/ingest.md.

use axum::http::{header, HeaderMap};
use upshot_model::Device;

/// The device the request's User-Agent names, if any.
pub fn from_headers(headers: &HeaderMap) -> Option<Device> {
    let agent = headers.get(header::USER_AGENT)?.to_str().ok()?;
    from_user_agent(agent)
}

pub fn from_user_agent(agent: &str) -> Option<Device> {
    let parsed = woothee::parser::Parser::new().parse(agent)?;
    match parsed.category {
        "pc" => Some(Device::Desktop),
        "smartphone" | "mobilephone" if is_tablet(parsed.os, agent) => Some(Device::Tablet),
        "smartphone" | "mobilephone" => Some(Device::Mobile),
        "appliance" | "crawler" => Some(Device::Other),
        _ => None,
    }
}

/// woothee files tablets under smartphones: an iPad says so in its OS, and an Android
/// tablet is an Android browser without the `Mobile` token (Google's documented rule
/// for telling its tablets from its phones).
fn is_tablet(os: &str, agent: &str) -> bool {
    os == "iPad" || (os == "Android" && !agent.contains("Mobile"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_map_to_the_four_devices() {
        let cases = [
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", Some(Device::Mobile)),
            ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36", Some(Device::Mobile)),
            ("Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", Some(Device::Tablet)),
            ("Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", Some(Device::Tablet)),
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", Some(Device::Desktop)),
            ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15", Some(Device::Desktop)),
            ("Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0", Some(Device::Desktop)),
            ("Mozilla/5.0 (PlayStation 4 5.55) AppleWebKit/601.2 (KHTML, like Gecko)", Some(Device::Other)),
            ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", Some(Device::Other)),
            ("curl/8.5.0", None),
            ("", None),
        ];
        for (agent, expected) in cases {
            assert_eq!(from_user_agent(agent), expected, "{agent}");
        }
    }
}
