//! Traffic fields of SPEC section 9.1 (`device`, `referrer`, `utm_*`) and the rules
//! that read them: a URL's host, and a landing event's channel. Every place that needs
//! a channel (the engine's pass, the ClickHouse rows) calls `channel` here.

/// Longest traffic field, in code points.
pub const TRAFFIC_CHARS_MAX: usize = 512;

/// The device an event was sent from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Device {
    Desktop,
    Mobile,
    Tablet,
    Other,
}

impl Device {
    pub const ALL: [Device; 4] = [Device::Desktop, Device::Mobile, Device::Tablet, Device::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            Device::Desktop => "desktop",
            Device::Mobile => "mobile",
            Device::Tablet => "tablet",
            Device::Other => "other",
        }
    }

    /// Case-sensitive, as SPEC section 9.1 says.
    pub fn parse(text: &str) -> Option<Device> {
        Device::ALL.into_iter().find(|device| device.as_str() == text)
    }
}

/// An event's traffic fields; all optional, accepted on every event type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    pub device: Option<Device>,
    pub referrer: Option<String>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
}

impl Traffic {
    pub fn is_empty(&self) -> bool {
        *self == Traffic::default()
    }
}

/// A session's channel (SPEC section 9.1), decided on its landing event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Channel {
    Paid,
    Email,
    Social,
    Search,
    Campaign,
    Referral,
    Direct,
}

impl Channel {
    pub const ALL: [Channel; 7] = [
        Channel::Paid,
        Channel::Email,
        Channel::Social,
        Channel::Search,
        Channel::Campaign,
        Channel::Referral,
        Channel::Direct,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Paid => "paid",
            Channel::Email => "email",
            Channel::Social => "social",
            Channel::Search => "search",
            Channel::Campaign => "campaign",
            Channel::Referral => "referral",
            Channel::Direct => "direct",
        }
    }

    pub fn parse(text: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|channel| channel.as_str() == text)
    }
}

const PAID_MEDIUMS: [&str; 7] = ["cpc", "ppc", "paid", "paidsearch", "paid_social", "display", "cpm"];
const SOCIAL_HOSTS: [&str; 10] = [
    "facebook.com",
    "instagram.com",
    "t.co",
    "twitter.com",
    "x.com",
    "linkedin.com",
    "pinterest.com",
    "tiktok.com",
    "youtube.com",
    "reddit.com",
];
const SEARCH_HOSTS: [&str; 7] =
    ["google.com", "bing.com", "duckduckgo.com", "yahoo.com", "baidu.com", "yandex.ru", "ecosia.org"];

/// The host of a URL-like text (SPEC section 9.1): what follows `scheme://` (a scheme
/// is an ASCII letter then letters, digits, `+`, `-`, `.`) up to the next `/`, `?` or
/// `#`, without user info (up to the last `@`) and port, ASCII-lowercased; nothing is
/// trimmed. `None` for a text not of that form or with an empty host.
pub fn host_of(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    let mut scheme_chars = scheme.chars();
    let starts_with_letter = scheme_chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !starts_with_letter || !scheme_chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_and_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    // An IPv6 literal keeps its brackets; otherwise the port follows the first ':'.
    let host = match host_and_port.strip_prefix('[') {
        Some(inside) => {
            inside.split_once(']').map_or(host_and_port, |(literal, _)| &host_and_port[..literal.len() + 2])
        }
        None => host_and_port.split(':').next().unwrap_or(""),
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// A host without one leading `www.`, as the channel rules compare hosts.
fn without_www(host: &str) -> &str {
    host.strip_prefix("www.").unwrap_or(host)
}

/// Whether `host` is one of `domains` or ends with `.` + one of them.
fn is_or_under(host: &str, domains: &[&str]) -> bool {
    domains.iter().any(|domain| {
        host == *domain
            || (host.len() > domain.len() && host.ends_with(domain) && host[..host.len() - domain.len()].ends_with('.'))
    })
}

/// What a referrer's host (without `www.`) says about the channel, before the url is
/// looked at: social, search, or neither (the rules 3 and 4 of SPEC section 9.1).
pub fn referrer_host_class(host: &str) -> Option<Channel> {
    if is_or_under(host, &SOCIAL_HOSTS) {
        Some(Channel::Social)
    } else if is_or_under(host, &SEARCH_HOSTS) || host.split('.').next() == Some("google") {
        Some(Channel::Search)
    } else {
        None
    }
}

/// The inputs of the channel rules, hosts already read (`None`: no host).
#[derive(Clone, Copy, Debug, Default)]
pub struct ChannelInputs<'a> {
    pub utm_source_present: bool,
    pub utm_medium: Option<&'a str>,
    /// The referrer's host without one leading `www.`.
    pub referrer_host: Option<&'a str>,
    /// The url's host without one leading `www.`.
    pub url_host: Option<&'a str>,
}

/// The channel by the first rule of SPEC section 9.1 that matches.
pub fn channel_of(inputs: ChannelInputs, referrer_class: impl Fn(&str) -> Option<Channel>) -> Channel {
    let medium = inputs.utm_medium.map(str::to_ascii_lowercase);
    let medium = medium.as_deref();
    if medium.is_some_and(|medium| PAID_MEDIUMS.contains(&medium)) {
        return Channel::Paid;
    }
    if medium == Some("email") {
        return Channel::Email;
    }
    let class = inputs.referrer_host.and_then(referrer_class);
    if medium == Some("social") || class == Some(Channel::Social) {
        return Channel::Social;
    }
    if class == Some(Channel::Search) {
        return Channel::Search;
    }
    if inputs.utm_source_present || medium.is_some() {
        return Channel::Campaign;
    }
    match inputs.referrer_host {
        Some(referrer) if inputs.url_host != Some(referrer) => Channel::Referral,
        _ => Channel::Direct,
    }
}

/// The channel of an event with these fields (the landing event of a session).
pub fn channel(traffic: &Traffic, url: Option<&str>) -> Channel {
    let referrer_host = traffic.referrer.as_deref().and_then(host_of);
    let url_host = url.and_then(host_of);
    channel_of(
        ChannelInputs {
            utm_source_present: traffic.utm_source.is_some(),
            utm_medium: traffic.utm_medium.as_deref(),
            referrer_host: referrer_host.as_deref().map(without_www),
            url_host: url_host.as_deref().map(without_www),
        },
        referrer_host_class,
    )
}

/// The host of a URL-like text without one leading `www.` (how the channel rules
/// compare hosts), for callers that cache it per distinct text.
pub fn comparable_host(text: &str) -> Option<String> {
    host_of(text).map(|host| without_www(&host).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traffic(medium: Option<&str>, source: Option<&str>, referrer: Option<&str>) -> Traffic {
        Traffic {
            utm_medium: medium.map(str::to_string),
            utm_source: source.map(str::to_string),
            referrer: referrer.map(str::to_string),
            ..Traffic::default()
        }
    }

    #[test]
    fn hosts_are_read_as_the_spec_says() {
        assert_eq!(host_of("https://www.Google.de/search?q=x").as_deref(), Some("www.google.de"));
        assert_eq!(host_of("http://user:pw@a@Shop.example:8080/x").as_deref(), Some("shop.example"));
        assert_eq!(host_of("android-app://com.google.android.gm").as_deref(), Some("com.google.android.gm"));
        assert_eq!(host_of("svn+ssh://h.example#frag").as_deref(), Some("h.example"));
        assert_eq!(host_of("https://h.example?x=1").as_deref(), Some("h.example"));
        assert_eq!(host_of("http://[::1]:8080/").as_deref(), Some("[::1]"));
        assert_eq!(host_of(" https://h.example"), None, "nothing is trimmed: a space is not a scheme");
        assert_eq!(host_of("https:/h.example"), None);
        assert_eq!(host_of("1http://h.example"), None);
        assert_eq!(host_of("https://"), None);
        assert_eq!(host_of("https://user@:80/"), None);
        assert_eq!(host_of("h.example/x"), None);
    }

    #[test]
    fn each_channel_rule_in_order() {
        let url = Some("https://www.shop.example/landing");
        let channel = |medium, source, referrer| super::channel(&traffic(medium, source, referrer), url);
        assert_eq!(
            channel(Some("CPC"), None, Some("https://facebook.com/")),
            Channel::Paid,
            "rule 1 first, lowercased"
        );
        assert_eq!(channel(Some("paid_social"), None, None), Channel::Paid);
        assert_eq!(channel(Some(" cpc"), None, None), Channel::Campaign, "not trimmed: rule 5");
        assert_eq!(channel(Some("Email"), Some("news"), None), Channel::Email);
        assert_eq!(channel(Some("social"), None, None), Channel::Social);
        assert_eq!(channel(None, None, Some("https://m.facebook.com/x")), Channel::Social);
        assert_eq!(channel(None, None, Some("https://t.co/abc")), Channel::Social);
        assert_eq!(channel(None, None, Some("https://notfacebook.com/")), Channel::Referral, "not a subdomain");
        assert_eq!(channel(None, None, Some("https://www.google.co.uk/")), Channel::Search, "first label google");
        assert_eq!(channel(None, None, Some("https://search.yahoo.com/")), Channel::Search);
        assert_eq!(channel(Some("newsletter"), None, Some("https://bing.com/")), Channel::Search, "rule 4 before 5");
        assert_eq!(channel(None, Some(""), None), Channel::Campaign, "an empty utm_source is present");
        assert_eq!(channel(None, None, Some("https://blog.example/post")), Channel::Referral);
        assert_eq!(channel(None, None, Some("https://shop.example/other")), Channel::Direct, "same host, www aside");
        assert_eq!(channel(None, None, Some("not a url")), Channel::Direct, "a referrer without host");
        assert_eq!(channel(None, None, None), Channel::Direct);
        let no_url = super::channel(&traffic(None, None, Some("https://shop.example/")), None);
        assert_eq!(no_url, Channel::Referral, "no url: any referrer host is a referral");
        let hostless_url = super::channel(&traffic(None, None, Some("https://shop.example/")), Some("/landing"));
        assert_eq!(hostless_url, Channel::Referral);
    }

    #[test]
    fn devices_are_case_sensitive() {
        assert_eq!(Device::parse("mobile"), Some(Device::Mobile));
        assert_eq!(Device::parse("Mobile"), None);
        assert_eq!(Device::parse("phone"), None);
    }
}
