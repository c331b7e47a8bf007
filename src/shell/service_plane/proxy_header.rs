//! The PROXY protocol header (HAProxy's specification, versions 1 and 2)
//! the load balancer sends an endpoint before the client's first byte when
//! the service asks for it (`shoal.io/proxy-protocol`): the client's address
//! and the address it connected to, which the endpoint cannot see otherwise.
//! Pure: bytes from addresses.

use std::net::{IpAddr, SocketAddr};

use shoal_crdt_state::service::ProxyProtocol;

/// The v2 signature: a byte sequence no v1 header or HTTP request starts with.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Version 2, command PROXY (a relayed connection, not a health check).
const V2_PROXY: u8 = 0x21;
/// Address family and transport: TCP over IPv4, TCP over IPv6.
const V2_TCP4: u8 = 0x11;
const V2_TCP6: u8 = 0x21;

/// The header for a connection from `client` that arrived at `server`;
/// empty when the service sends none.
pub fn header(version: ProxyProtocol, client: SocketAddr, server: SocketAddr) -> Vec<u8> {
    let (client_ip, server_ip) = same_family(client.ip(), server.ip());
    match version {
        ProxyProtocol::Off => Vec::new(),
        ProxyProtocol::V1 => {
            let family = if client_ip.is_ipv4() { "TCP4" } else { "TCP6" };
            format!(
                "PROXY {family} {client_ip} {server_ip} {} {}\r\n",
                client.port(),
                server.port()
            )
            .into_bytes()
        }
        ProxyProtocol::V2 => {
            let mut out = V2_SIGNATURE.to_vec();
            out.push(V2_PROXY);
            match (client_ip, server_ip) {
                (IpAddr::V4(c), IpAddr::V4(s)) => {
                    out.push(V2_TCP4);
                    out.extend_from_slice(&12u16.to_be_bytes());
                    out.extend_from_slice(&c.octets());
                    out.extend_from_slice(&s.octets());
                }
                (c, s) => {
                    out.push(V2_TCP6);
                    out.extend_from_slice(&36u16.to_be_bytes());
                    out.extend_from_slice(&v6(c).octets());
                    out.extend_from_slice(&v6(s).octets());
                }
            }
            out.extend_from_slice(&client.port().to_be_bytes());
            out.extend_from_slice(&server.port().to_be_bytes());
            out
        }
    }
}

/// Both addresses in one family (the header has one): IPv6, with IPv4
/// ones mapped, when they differ.
fn same_family(a: IpAddr, b: IpAddr) -> (IpAddr, IpAddr) {
    match (a, b) {
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => (a, b),
        _ => (IpAddr::V6(v6(a)), IpAddr::V6(v6(b))),
    }
}

fn v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_is_one_text_line() {
        let h = header(
            ProxyProtocol::V1,
            addr("192.168.0.1:56324"),
            addr("192.168.0.11:443"),
        );
        assert_eq!(h, b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
        let h = header(ProxyProtocol::V1, addr("[::1]:5"), addr("[2001:db8::2]:80"));
        assert_eq!(h, b"PROXY TCP6 ::1 2001:db8::2 5 80\r\n");
        // Mixed families: both as IPv6.
        let h = header(ProxyProtocol::V1, addr("10.0.0.1:5"), addr("[::1]:80"));
        assert_eq!(h, b"PROXY TCP6 ::ffff:10.0.0.1 ::1 5 80\r\n");
    }

    #[test]
    fn v2_is_the_signature_then_addresses_in_network_order() {
        let h = header(
            ProxyProtocol::V2,
            addr("10.1.2.3:4660"),
            addr("127.0.0.1:8080"),
        );
        let mut want = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        want.extend([
            0x21, 0x11, 0, 12, 10, 1, 2, 3, 127, 0, 0, 1, 0x12, 0x34, 0x1f, 0x90,
        ]);
        assert_eq!(h, want);
        let h = header(ProxyProtocol::V2, addr("[::1]:1"), addr("[::2]:2"));
        assert_eq!(h.len(), 16 + 36);
        assert_eq!(&h[12..16], &[0x21, 0x21, 0, 36]);
    }

    #[test]
    fn off_sends_nothing() {
        assert!(header(ProxyProtocol::Off, addr("1.2.3.4:5"), addr("5.6.7.8:9")).is_empty());
    }
}
