//! `rc-partition-heal`: the cluster splits in two halves. With the default
//! `Available` policy each side must run every declared replica exactly
//! once on its side while split. During the split one side scales
//! `rc-0000` up by two and the other rolls `rc-0001` to a new image; after
//! the heal both changes survive and exactly the declared count runs.

use std::collections::BTreeMap;

use shoal::peer::Command;

use super::cluster::{PeerCluster, secs};
use super::{PeerOptions, apply_workload, report, workload_rc};
use crate::queue::Micros;
use crate::report::PeerReport;
use crate::world::Slot;

/// The image the rolling update moves `rc-0001` to.
pub const NEW_IMAGE: &str = "shoal/hello:2";

fn side_ok(c: &PeerCluster, side: &[Slot]) -> bool {
    c.side_violations(side).is_empty()
}

/// Runs until both sides hold their invariants, or `deadline`.
fn settle_sides(c: &mut PeerCluster, sides: &[Vec<Slot>; 2], deadline: Micros) -> Option<Micros> {
    loop {
        if sides.iter().all(|s| side_ok(c, s)) {
            return Some(c.now());
        }
        if c.now() >= deadline {
            return None;
        }
        let next = (c.now() + secs(1) / 2).min(deadline);
        c.run_until(next);
    }
}

/// Container starts so far on every live node's engine.
fn container_starts(c: &PeerCluster) -> u64 {
    c.alive_slots()
        .into_iter()
        .filter_map(|s| c.world.node(s).map(|n| n.runtime.starts))
        .sum()
}

pub fn run(o: &PeerOptions) -> PeerReport {
    let mut o = o.clone();
    o.rcs = o.rcs.max(2);
    let mut c = PeerCluster::new(&o);
    c.form(o.peers);
    c.run_until(secs(2));
    apply_workload(&mut c, &o, secs(1));
    let formed = c.settle(secs(1) / 2, secs(90));

    let alive = c.alive_slots();
    let half = alive.len() / 2;
    let sides = [alive[..half].to_vec(), alive[half..].to_vec()];
    let groups: Vec<_> = sides
        .iter()
        .enumerate()
        .flat_map(|(g, side)| side.iter().map(move |&s| (s, g as u32 + 1)))
        .map(|(s, g)| (c.world.addr(s), g))
        .collect();
    c.world.net.partition(groups);
    let t_split = c.now();
    let split = settle_sides(&mut c, &sides, t_split + secs(90));

    let scaled_to = o.replicas + 2;
    let _ = c.command(
        sides[0][0],
        Command::Scale {
            name: workload_rc(0, 0).name,
            replicas: scaled_to,
        },
    );
    let _ = c.command(
        sides[1][0],
        Command::RollingUpdate {
            name: workload_rc(1, 0).name,
            image: NEW_IMAGE.into(),
            container: None,
        },
    );
    let deadline = c.now() + secs(90);
    let changed = settle_sides(&mut c, &sides, deadline);
    let duplicates_while_split = c.replica_count().duplicates;

    c.world.net.heal();
    let t_heal = c.now();
    let starts_at_heal = container_starts(&c);
    // Settled means the counts are exact and the rollout has finished.
    let healed = c.settle_until(secs(1) / 2, t_heal + secs(120), |c| {
        c.runs_image(&workload_rc(1, 0).name, NEW_IMAGE)
    });

    let starts_after_heal = container_starts(&c) - starts_at_heal;
    let mut extra = BTreeMap::new();
    extra.insert("starts_after_heal".into(), starts_after_heal as f64);
    for (k, t, since) in [
        ("formed_ms", formed, 0),
        ("sides_settled_ms", split, t_split),
        ("sides_changed_ms", changed, t_split),
        ("healed_ms", healed, t_heal),
    ] {
        extra.insert(k.into(), t.map_or(-1.0, |t| ((t - since) / 1000) as f64));
    }
    extra.insert(
        "duplicates_while_split".into(),
        duplicates_while_split as f64,
    );
    let mut r = report(&c, "rc-partition-heal", o.peers, None, extra);
    let mut fail = |why: String| {
        r.base.violations.push(why);
        r.base.converged = false;
        r.rc.rc_converged = false;
    };
    if split.is_none() || changed.is_none() {
        fail("a side did not keep the declared count while split".into());
    }
    let declared = c.declared();
    if declared.get(&workload_rc(0, 0).name) != Some(&scaled_to) {
        fail(format!(
            "the scale made during the split was lost: {declared:?}"
        ));
    }
    if !c.runs_image(&workload_rc(1, 0).name, NEW_IMAGE) {
        fail("the image change made during the split was lost".into());
    }
    r
}
