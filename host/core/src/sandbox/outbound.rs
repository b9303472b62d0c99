//! A function's outbound allowlist (`allow_outbound`): entries, and the
//! rule that decides a connection.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use serde::{Deserialize, Serialize};

/// One `allow_outbound` entry: addresses (a CIDR, one address, or what a
/// name resolved to when the function was deployed) and a port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outbound {
    /// The name the entry gave, when it was one.
    pub name: Option<String>,
    /// Networks, each an address and a prefix length.
    pub nets: Vec<(IpAddr, u8)>,
    /// The port, or any (`*`).
    pub port: Option<u16>,
}

impl Outbound {
    /// Parses `ADDRESS:PORT`, `CIDR:PORT`, `[IPv6]:PORT`, `[IPv6/LEN]:PORT`
    /// or `NAME:PORT` (resolved now); `PORT` may be `*`.
    pub fn parse(entry: &str) -> Result<Outbound, String> {
        let bad = |why: &str| format!("allow_outbound entry `{entry}`: {why}");
        if entry.len() > 300 {
            return Err(bad("too long"));
        }
        let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
            let (host, port) = rest
                .split_once("]:")
                .ok_or_else(|| bad("expected [IPv6]:PORT"))?;
            (host, port)
        } else {
            entry
                .rsplit_once(':')
                .ok_or_else(|| bad("expected ADDRESS:PORT"))?
        };
        let port = match port {
            "*" => None,
            p => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| bad("the port must be 1 to 65535 or *"))?,
            ),
        };
        let (addr, prefix) = match host.split_once('/') {
            Some((a, len)) => (a, Some(len)),
            None => (host, None),
        };
        if let Ok(ip) = addr.parse::<IpAddr>() {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let len = match prefix {
                None => max,
                Some(l) => l
                    .parse::<u8>()
                    .ok()
                    .filter(|&l| l <= max)
                    .ok_or_else(|| bad("bad prefix length"))?,
            };
            return Ok(Outbound {
                name: None,
                nets: vec![(ip, len)],
                port,
            });
        }
        if prefix.is_some() {
            return Err(bad("a prefix length needs an address"));
        }
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(bad("not an address or a host name"));
        }
        // Names are resolved once, here (at deploy): the sandbox has no
        // resolver, and its /etc/hosts lists what they resolved to.
        let mut nets: Vec<(IpAddr, u8)> = (host, 0)
            .to_socket_addrs()
            .map_err(|e| bad(&format!("cannot resolve {host}: {e}")))?
            .map(|a| {
                let ip = a.ip();
                (ip, if ip.is_ipv4() { 32 } else { 128 })
            })
            .collect();
        nets.sort();
        nets.dedup();
        if nets.is_empty() {
            return Err(bad(&format!("{host} resolved to no address")));
        }
        Ok(Outbound {
            name: Some(host.to_owned()),
            nets,
            port,
        })
    }

    /// Whether the entry covers any of the host's own or link-local
    /// addresses (loopback, unspecified, its interfaces', 169.254/16,
    /// fe80::/10).
    pub(crate) fn reaches_local(&self) -> bool {
        let local = local_addresses();
        let probes: Vec<IpAddr> = [
            "127.0.0.1",
            "0.0.0.0",
            "169.254.169.254",
            "::1",
            "::",
            "fe80::1",
        ]
        .iter()
        .filter_map(|a| a.parse().ok())
        .chain(local)
        .collect();
        self.nets.iter().any(|&(net, len)| {
            reserved(net, &[])
                || probes
                    .iter()
                    .any(|&p| in_net(canonical(p), canonical(net), len))
        })
    }

    /// `/etc/hosts` lines for a named entry.
    pub(crate) fn hosts_lines(&self) -> Vec<String> {
        match &self.name {
            Some(name) => self
                .nets
                .iter()
                .map(|(ip, _)| format!("{ip} {name}"))
                .collect(),
            None => Vec::new(),
        }
    }

    fn matches(&self, addr: &SocketAddr) -> bool {
        if self.port.is_some_and(|p| p != addr.port()) {
            return false;
        }
        let ip = canonical(addr.ip());
        self.nets
            .iter()
            .any(|&(net, len)| in_net(ip, canonical(net), len))
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it reaches.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len.min(32)))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len.min(128)))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Addresses never reachable unless an entry lists them: the host's own
/// (loopback, unspecified, its interfaces' addresses) and link-local ones
/// (cloud metadata services live at 169.254.169.254).
fn reserved(ip: IpAddr, local: &[IpAddr]) -> bool {
    let ip = canonical(ip);
    if local.iter().any(|l| canonical(*l) == ip) {
        return true;
    }
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_unspecified()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_multicast()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Whether a connection to `addr` is allowed under `allow` (empty: any
/// address not reserved), given the host's own addresses `local`.
pub(crate) fn allowed(addr: &SocketAddr, allow: &[Outbound], local: &[IpAddr]) -> bool {
    let listed = allow.iter().any(|o| o.matches(addr));
    if listed {
        return true;
    }
    allow.is_empty() && !reserved(addr.ip(), local)
}

/// The host's own interface addresses.
pub(crate) fn local_addresses() -> Vec<IpAddr> {
    let mut out = vec![
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list it allocates,
    // freed below with freeifaddrs; each node's ifa_addr is null or points
    // to a sockaddr of the family it names.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return out;
        }
        let mut node = list;
        while !node.is_null() {
            let addr = (*node).ifa_addr;
            if !addr.is_null() {
                match i32::from((*addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(addr as *const libc::sockaddr_in);
                        out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                            sin.sin_addr.s_addr,
                        ))));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(addr as *const libc::sockaddr_in6);
                        out.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
                    }
                    _ => {}
                }
            }
            node = (*node).ifa_next;
        }
        libc::freeifaddrs(list);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn entries_parse_and_match_addresses_and_ports() {
        let allow = vec![
            Outbound::parse("203.0.113.7:443").unwrap(),
            Outbound::parse("10.0.0.0/8:5432").unwrap(),
            Outbound::parse("[2001:db8::/32]:*").unwrap(),
        ];
        assert!(allowed(&a("203.0.113.7:443"), &allow, &[]));
        assert!(!allowed(&a("203.0.113.7:80"), &allow, &[]));
        assert!(allowed(&a("10.1.2.3:5432"), &allow, &[]));
        assert!(!allowed(&a("11.1.2.3:5432"), &allow, &[]));
        assert!(allowed(&a("[2001:db8::1]:9"), &allow, &[]));
        assert!(!allowed(&a("198.51.100.1:443"), &allow, &[]));
    }

    #[test]
    fn the_host_and_link_local_addresses_need_an_entry() {
        for target in [
            "127.0.0.1:5432",
            "127.0.0.2:80",
            "0.0.0.0:8000",
            "[::1]:80",
            "[::ffff:127.0.0.1]:5432",
            "169.254.169.254:80",
            "[fe80::1]:80",
            "192.0.2.10:8000",
        ] {
            assert!(
                !allowed(&a(target), &[], &[a("192.0.2.10:0").ip()]),
                "{target}"
            );
        }
        assert!(allowed(&a("198.51.100.1:443"), &[], &[]));
        let listed = vec![Outbound::parse("127.0.0.1:5432").unwrap()];
        assert!(allowed(&a("127.0.0.1:5432"), &listed, &[]));
        assert!(!allowed(&a("127.0.0.1:6379"), &listed, &[]));
    }

    #[test]
    fn bad_entries_are_refused() {
        for entry in [
            "",
            "1.2.3.4",
            "1.2.3.4:0",
            "1.2.3.4:70000",
            "1.2.3.4/33:1",
            "a b:1",
            "[::1:80",
        ] {
            assert!(Outbound::parse(entry).is_err(), "{entry}");
        }
        assert_eq!(
            Outbound::parse("localhost:80").unwrap().name.as_deref(),
            Some("localhost")
        );
    }
}
