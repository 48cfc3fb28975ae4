//! Address ranges (`--local-net`) and the allow-list of known-good patterns.
//!
//! Promises: parsing returns readable errors naming the bad text; matching never panics.

use std::net::IpAddr;

/// An address range in CIDR form (`192.168.1.0/24`, `2001:db8::/32`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("'{text}': not an IP address or CIDR range"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("'{text}': prefix length must be 0..={max}"))?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.addr, addr) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }

    /// The directed broadcast address of an IPv4 network shorter than /31.
    pub fn broadcast(&self) -> Option<IpAddr> {
        match self.addr {
            IpAddr::V4(net) if self.prefix < 31 => {
                let host_bits = u32::MAX.checked_shr(u32::from(self.prefix)).unwrap_or(0);
                Some(IpAddr::V4((u32::from(net) | host_bits).into()))
            }
            _ => None,
        }
    }
}

/// One allow-list entry: host range, destination (range or name with its subdomains), port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowEntry {
    host: Option<Cidr>,
    dest: AllowDest,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum AllowDest {
    Any,
    Range(Cidr),
    Name(String),
}

/// Known-good patterns (`--allow-list FILE`), shown apart from the others.
///
/// One entry per line: `HOST DESTINATION [PORT]` separated by spaces, tabs or commas, where
/// `*` means any; HOST is an address or CIDR range; DESTINATION an address, a CIDR range or a
/// server name (which also covers its subdomains; a leading `*.` is accepted); PORT a number.
/// `#` starts a comment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    entries: Vec<AllowEntry>,
}

impl AllowList {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|f| !f.is_empty())
                .collect();
            let at = |e: String| format!("line {}: {e}", n + 1);
            let (host, dest, port) = match fields.as_slice() {
                [h, d] => (*h, *d, "*"),
                [h, d, p] => (*h, *d, *p),
                _ => return Err(at(format!("'{line}': expected HOST DESTINATION [PORT]"))),
            };
            let host = match host {
                "*" => None,
                h => Some(Cidr::parse(h).map_err(at)?),
            };
            let dest = match dest {
                "*" => AllowDest::Any,
                d => match Cidr::parse(d) {
                    Ok(c) => AllowDest::Range(c),
                    Err(_) => AllowDest::Name(
                        d.trim_start_matches("*.")
                            .trim_end_matches('.')
                            .to_ascii_lowercase(),
                    ),
                },
            };
            let port = match port {
                "*" => None,
                p => Some(
                    p.parse::<u16>()
                        .map_err(|_| at(format!("'{p}' is not a port number")))?,
                ),
            };
            entries.push(AllowEntry { host, dest, port });
        }
        Ok(AllowList { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a pattern from `host` to `dest` (known by `name`, if any) on `port` is allowed.
    pub fn allows(&self, host: IpAddr, dest: IpAddr, name: Option<&str>, port: u16) -> bool {
        self.entries.iter().any(|e| {
            e.host.is_none_or(|h| h.contains(host))
                && e.port.is_none_or(|p| p == port)
                && match &e.dest {
                    AllowDest::Any => true,
                    AllowDest::Range(c) => c.contains(dest),
                    AllowDest::Name(n) => name.is_some_and(|name| {
                        let name = name.trim_end_matches('.').to_ascii_lowercase();
                        name == *n || name.ends_with(&format!(".{n}"))
                    }),
                }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_ranges() {
        let net = Cidr::parse("192.168.1.0/24").unwrap();
        assert!(net.contains(ip("192.168.1.77")));
        assert!(!net.contains(ip("192.168.2.1")));
        assert!(!net.contains(ip("::1")));
        assert_eq!(net.broadcast(), Some(ip("192.168.1.255")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(
            Cidr::parse("2001:db8::/32")
                .unwrap()
                .contains(ip("2001:db8:1::5"))
        );
        assert!(Cidr::parse("10.0.0.1").unwrap().contains(ip("10.0.0.1")));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("example.test").is_err());
    }

    #[test]
    fn allow_list_entries() {
        let list = AllowList::parse(
            "# known good\n\
             * *.ubuntu.com 80\n\
             192.0.2.0/24, 198.51.100.7, *\n\
             10.0.0.5 ntp.example.test\n",
        )
        .unwrap();
        let host = ip("192.0.2.9");
        assert!(list.allows(host, ip("1.2.3.4"), Some("security.ubuntu.com"), 80));
        assert!(list.allows(host, ip("1.2.3.4"), Some("ubuntu.com"), 80));
        assert!(!list.allows(host, ip("1.2.3.4"), Some("security.ubuntu.com"), 443));
        assert!(!list.allows(host, ip("1.2.3.4"), Some("notubuntu.com"), 80));
        assert!(list.allows(host, ip("198.51.100.7"), None, 8443));
        assert!(!list.allows(ip("192.0.3.9"), ip("198.51.100.7"), None, 8443));
        assert!(list.allows(
            ip("10.0.0.5"),
            ip("1.1.1.1"),
            Some("NTP.example.test."),
            123
        ));
        assert!(AllowList::parse("just-one-field").is_err());
        assert!(AllowList::parse("* * http").unwrap_err().contains("line 1"));
    }
}
