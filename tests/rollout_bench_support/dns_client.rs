//! A client for a Swarm service in DNS round-robin mode, where no routing
//! mesh is needed: a busybox shell loop in a container on the service's
//! overlay network. Each request asks Swarm's DNS for the service's name
//! (busybox `nslookup`, its own resolver) and GETs the first address of
//! the answer (`timeout 3 wget`: the test image's busybox wget crashes
//! with its own `-T` timeout); each
//! outcome is printed with the kernel's uptime so the harness can place it
//! in time. A name that resolves to nothing is a failed request.

use std::time::Duration;

use super::Tally;
use super::swarm::Swarm;

const CONTAINER: &str = "rolloutbench-client";
/// The client stops when this file appears in its container.
const STOP_FILE: &str = "/tmp/stop";

/// The machine's uptime in seconds, the clock the client prints (it is
/// not namespaced: the container reads the same).
pub fn uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .expect("read /proc/uptime")
}

/// The loop: a slot every 10 ms / `per_second` (centiseconds from
/// /proc/uptime, so `per_second` must divide 100), a 3 s timeout per
/// request, at most `max_requests`. `read` and arithmetic are shell
/// builtins: only `nslookup`, `timeout`, `wget` and `usleep` fork.
fn script(service: &str, per_second: u32, max_requests: u64) -> String {
    let step = 100 / per_second;
    format!(
        r#"trap "exit 0" TERM
read up _ </proc/uptime; start=${{up%.*}}${{up#*.}}; k=0
while [ ! -e {STOP_FILE} ] && [ $k -lt {max_requests} ]; do
  read up _ </proc/uptime; now=${{up%.*}}${{up#*.}}
  pause=$((start + k * {step} - now)); [ $pause -gt 0 ] && usleep $((pause * 10000))
  read up _ </proc/uptime
  nslookup {service} >/tmp/answer 2>/dev/null; addr=; named=
  while read key value; do
    [ "$key" = Name: ] && named=1
    [ "$key" = Address: ] && [ -n "$named" ] && {{ addr=$value; break; }}
  done </tmp/answer
  if [ -n "$addr" ] && page=$(timeout 3 wget -q -O - "http://$addr/" 2>/dev/null); then
    echo "$up ok $page"
  else
    echo "$up fail"
  fi
  k=$((k + 1))
done
"#
    )
}

pub struct DnsClient;

impl DnsClient {
    pub fn start(
        swarm: &mut Swarm,
        network: &str,
        service: &str,
        image: &str,
        per_second: u32,
        max_requests: u64,
    ) -> Result<DnsClient, String> {
        assert!(
            per_second > 0 && 100 % per_second == 0,
            "the client's rate must divide 100 requests a second"
        );
        swarm.run_container(
            CONTAINER,
            network,
            image,
            &script(service, per_second, max_requests),
        )?;
        Ok(DnsClient)
    }

    /// Stops the loop and counts what it printed; the times failed requests
    /// began, relative to `origin` (an [`uptime`] reading).
    /// Whether the client has had an answer yet.
    pub fn answered(&self, swarm: &Swarm) -> bool {
        swarm
            .logs(CONTAINER)
            .is_ok_and(|printed| printed.lines().any(|l| l.contains(" ok ")))
    }

    pub fn stop(self, swarm: &Swarm, origin: f64) -> Result<Tally, String> {
        swarm.exec(CONTAINER, &["touch", STOP_FILE])?;
        // The loop finishes its request in flight (at most the 3 s timeout).
        std::thread::sleep(Duration::from_secs(4));
        let printed = swarm.logs(CONTAINER)?;
        let mut tally = Tally::default();
        let (mut first, mut last) = (None, 0.0f64);
        for line in printed.lines() {
            let mut fields = line.splitn(3, ' ');
            let (Some(at), Some(outcome)) = (fields.next(), fields.next()) else {
                continue;
            };
            let Ok(at) = at.parse::<f64>() else { continue };
            first.get_or_insert(at);
            last = at;
            tally.requests += 1;
            match outcome {
                "ok" => {
                    let page = fields.next().unwrap_or_default().trim().to_owned();
                    *tally.pages.entry(page).or_default() += 1;
                }
                _ => tally
                    .failures_at
                    .push(Duration::from_secs_f64((at - origin).max(0.0))),
            }
        }
        tally.seconds = first.map_or(0.0, |f| last - f);
        Ok(tally)
    }
}
