//! Who may do what at the front door: the scope of an API token and what each API call needs
//! ([`Scope`], [`required_scope`]), a token's lifetime as typed on the command line
//! ([`parse_lifetime`]), and which address a request comes from when proxies stand in front
//! ([`TrustedProxies`], [`rate_key`]).

use std::net::IpAddr;
use std::time::Duration;

/// What an API token may do; each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// `GET`s and `/metrics`.
    Read,
    /// Also runs, retries, cancels, verifications and triggers.
    Run,
    /// Everything: also secrets, companies, alert channels, tokens.
    Admin,
}

impl Scope {
    /// The scope's name (`read`, `run`, `admin`), as stored and typed.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Run => "run",
            Self::Admin => "admin",
        }
    }

    /// Whether a token of this scope may make a call that needs `needed`.
    #[must_use]
    pub fn allows(self, needed: Self) -> bool {
        self >= needed
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Scope {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "read" => Ok(Self::Read),
            "run" => Ok(Self::Run),
            "admin" => Ok(Self::Admin),
            other => Err(format!(
                "`{}` is not a scope: use read, run or admin",
                other.chars().take(40).collect::<String>()
            )),
        }
    }
}

/// The scope an API call needs: `GET`/`HEAD` anything is `read`; changing runs, batches,
/// verifications and triggers is `run`; anything else (secrets, companies, alert channels, tokens, and any
/// route added later) is `admin`.
#[must_use]
pub fn required_scope(method: &str, path: &str) -> Scope {
    if matches!(method, "GET" | "HEAD") {
        return Scope::Read;
    }
    let under = |prefix: &str| {
        path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    if [
        "/api/v1/runs",
        "/api/v1/batches",
        "/api/v1/verify",
        "/api/v1/triggers",
    ]
    .iter()
    .any(|p| under(p))
    {
        Scope::Run
    } else {
        Scope::Admin
    }
}

/// The longest lifetime a token may be given (about ten years).
const MAX_LIFETIME_HOURS: u64 = 24 * 3660;

/// A token lifetime such as `90d` (days) or `12h` (hours).
///
/// # Errors
/// Anything else, or zero, or more than about ten years (one line saying so).
pub fn parse_lifetime(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let shown: String = text.chars().take(40).collect();
    let bad = || format!("`{shown}` is not a lifetime: use days or hours such as 90d or 12h");
    let (number, hours_per_unit) = if let Some(n) = text.strip_suffix('d') {
        (n, 24)
    } else if let Some(n) = text.strip_suffix('h') {
        (n, 1)
    } else {
        return Err(bad());
    };
    if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = number.parse().map_err(|_| bad())?;
    let hours = n.checked_mul(hours_per_unit).ok_or_else(bad)?;
    if hours == 0 || hours > MAX_LIFETIME_HOURS {
        return Err(format!(
            "`{shown}` is not a usable lifetime: give 1h to 3660d"
        ));
    }
    Ok(Duration::from_secs(hours * 3600))
}

/// One address or network (`10.0.0.1`, `10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Whether `ip` is in this network.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let shown: String = text.chars().take(60).collect();
        let bad = || format!("`{shown}` is not an IP address or network such as 10.0.0.0/8");
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr = canonical(addr.parse::<IpAddr>().map_err(|_| bad())?);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        };
        Ok(Self { addr, prefix })
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is; others unchanged.
#[must_use]
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The proxies whose `X-Forwarded-For` is believed; none by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Network>);

impl TrustedProxies {
    /// A comma-separated list of addresses and networks (empty: none).
    ///
    /// # Errors
    /// An entry that is not an address or network.
    pub fn parse(text: &str) -> Result<Self, String> {
        text.split(',')
            .filter(|entry| !entry.trim().is_empty())
            .map(str::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }

    /// The client of a request that came from `peer` carrying these `X-Forwarded-For` values
    /// (in header order): `peer` itself unless it is a trusted proxy; then the right-most hop
    /// that is not a trusted proxy (a hop that does not parse ends the walk: the hop after it,
    /// written by a trusted proxy, is the client).
    #[must_use]
    pub fn client(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        let mut client = canonical(peer);
        if !self.trusts(client) {
            return client;
        }
        let hops = forwarded_for.iter().flat_map(|v| v.split(',')).rev();
        for hop in hops {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                break;
            };
            client = canonical(ip);
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

/// The key failed logins are counted under for `ip`: an IPv4 address, or an IPv6 address's /64
/// (one subscriber usually holds a whole /64).
#[must_use]
pub fn rate_key(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let net = u128::from(v6) & (u128::MAX << 64);
            format!("{}/64", std::net::Ipv6Addr::from(net))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn scopes_nest_and_calls_need_the_least_scope_that_fits() {
        assert!(Scope::Admin.allows(Scope::Run) && Scope::Run.allows(Scope::Read));
        assert!(!Scope::Read.allows(Scope::Run) && !Scope::Run.allows(Scope::Admin));
        assert_eq!(required_scope("GET", "/api/v1/secrets"), Scope::Read);
        assert_eq!(required_scope("GET", "/metrics"), Scope::Read);
        assert_eq!(required_scope("POST", "/api/v1/runs"), Scope::Run);
        assert_eq!(required_scope("POST", "/api/v1/runs/x/retry"), Scope::Run);
        assert_eq!(required_scope("DELETE", "/api/v1/triggers/x"), Scope::Run);
        assert_eq!(required_scope("POST", "/api/v1/verify"), Scope::Run);
        assert_eq!(
            required_scope("POST", "/api/v1/batches/x/retry"),
            Scope::Run
        );
        assert_eq!(required_scope("PUT", "/api/v1/secrets/X"), Scope::Admin);
        assert_eq!(required_scope("POST", "/api/v1/runsx"), Scope::Admin);
        assert_eq!(
            required_scope("POST", "/api/v1/alert-channels"),
            Scope::Admin
        );
        assert_eq!("run".parse::<Scope>(), Ok(Scope::Run));
        assert!("root".parse::<Scope>().is_err());
    }

    #[test]
    fn lifetimes_are_days_or_hours() {
        assert_eq!(parse_lifetime("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_lifetime("12h"), Ok(Duration::from_secs(12 * 3600)));
        for bad in [
            "",
            "d",
            "0d",
            "-1d",
            "90",
            "1.5d",
            "90 days",
            "99999999999999999999d",
        ] {
            let err = parse_lifetime(bad).expect_err(bad);
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("10.0.0.5"), &["1.2.3.4"]), ip("10.0.0.5"));
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.168.1.1").expect("parse");
        // Behind one proxy: the hop it appended.
        assert_eq!(proxies.client(ip("10.0.0.5"), &["1.2.3.4"]), ip("1.2.3.4"));
        // A forged left part is ignored: the right-most untrusted hop is the client.
        let forged = ["6.6.6.6, 1.2.3.4", "192.168.1.1"];
        assert_eq!(proxies.client(ip("10.0.0.5"), &forged), ip("1.2.3.4"));
        assert_eq!(
            proxies.client(ip("10.0.0.5"), &["junk, 1.2.3.4"]),
            ip("1.2.3.4")
        );
        // No header, or only garbage: the proxy itself.
        assert_eq!(proxies.client(ip("10.0.0.5"), &[]), ip("10.0.0.5"));
        assert_eq!(proxies.client(ip("10.0.0.5"), &["nope"]), ip("10.0.0.5"));
        assert_eq!(
            proxies.client(ip("::ffff:8.8.8.8"), &["1.1.1.1"]),
            ip("8.8.8.8")
        );
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.local").is_err());
        assert_eq!(TrustedProxies::parse(" "), Ok(TrustedProxies::default()));
        assert!(
            TrustedProxies::parse("::/0")
                .expect("all v6")
                .trusts(ip("::1"))
        );
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        assert_eq!(rate_key(ip("2001:db8:1:2:3:4:5:6")), "2001:db8:1:2::/64");
        assert_eq!(rate_key(ip("::ffff:1.2.3.4")), "1.2.3.4");
    }
}
