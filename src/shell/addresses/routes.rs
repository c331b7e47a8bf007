//! Default routes from the kernel's route tables, as `/proc/net` prints them.
//!
//! Parsing takes the text, not the file, so the tests feed it tables.

use super::choose::DefaultRoute;

/// Route flag: the route is up.
const RTF_UP: u32 = 0x0001;
/// Route flag: packets to it are refused (the kernel's placeholder default on `lo`).
const RTF_REJECT: u32 = 0x0200;

/// The IPv4 default routes of a `/proc/net/route` table (destination and
/// mask 0, up), in table order. Lines that do not parse are skipped.
pub fn ipv4_defaults(table: &str) -> Vec<DefaultRoute> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [
                iface,
                destination,
                _gateway,
                flags,
                _refcnt,
                _use,
                metric,
                mask,
                ..,
            ] = fields[..]
            else {
                return None;
            };
            let flags = u32::from_str_radix(flags, 16).ok()?;
            let default = destination == "00000000" && mask == "00000000";
            let metric = metric.parse().ok()?;
            (default && flags & RTF_UP != 0 && flags & RTF_REJECT == 0).then(|| DefaultRoute {
                interface: iface.to_owned(),
                metric,
                ipv6: false,
            })
        })
        .collect()
}

/// The IPv6 default routes of a `/proc/net/ipv6_route` table (`::/0`, up,
/// not a reject route), in table order.
pub fn ipv6_defaults(table: &str) -> Vec<DefaultRoute> {
    table
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [
                destination,
                prefix,
                _src,
                _src_prefix,
                _next_hop,
                metric,
                _ref,
                _use,
                flags,
                iface,
            ] = fields[..]
            else {
                return None;
            };
            let flags = u32::from_str_radix(flags, 16).ok()?;
            let default = destination.bytes().all(|b| b == b'0') && prefix == "00";
            let usable = flags & RTF_UP != 0 && flags & RTF_REJECT == 0 && iface != "lo";
            let metric = u32::from_str_radix(metric, 16).ok()?;
            (default && usable).then(|| DefaultRoute {
                interface: iface.to_owned(),
                metric,
                ipv6: true,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const IPV4: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
eth1\t00000000\t0101A8C0\t0002\t0\t0\t50\t00000000\t0\t0\t0
";

    const IPV6: &str = "\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
";

    #[test]
    fn ipv4_default_routes_are_the_up_zero_routes() {
        let routes = ipv4_defaults(IPV4);
        let names: Vec<(&str, u32)> = routes
            .iter()
            .map(|r| (r.interface.as_str(), r.metric))
            .collect();
        // eth1's route is not up; docker0's is not a default route.
        assert_eq!(names, [("eth0", 100), ("wlan0", 600)]);
        assert!(routes.iter().all(|r| !r.ipv6));
    }

    #[test]
    fn ipv6_default_route_skips_the_reject_route_on_lo() {
        let routes = ipv6_defaults(IPV6);
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].interface, "eth0");
        assert_eq!(routes[0].metric, 0x400);
        assert!(routes[0].ipv6);
    }

    #[test]
    fn empty_or_garbled_tables_have_no_default_route() {
        assert!(ipv4_defaults("").is_empty());
        assert!(ipv4_defaults("Iface\tDestination\nnonsense\n").is_empty());
        assert!(ipv6_defaults("not a route\n").is_empty());
    }
}
