//! What happens to a simulated machine as a whole: power cuts, orderly
//! shutdowns and boots, with its peer and its own engine together. Only
//! clusters started with one engine per node have machines in this sense.

use super::{Cluster, NodeEngine, ground_truth};

impl Cluster {
    /// The engine of machine `i`; only clusters with one engine per node have one.
    pub fn engine(&self, i: usize) -> &NodeEngine {
        self.engines.get(i).unwrap_or_else(|| {
            panic!("machine {i} has no engine of its own: start the cluster with engine_per_node()")
        })
    }

    fn engine_mut(&mut self, i: usize) -> &mut NodeEngine {
        self.engines.get_mut(i).unwrap_or_else(|| {
            panic!("machine {i} has no engine of its own: start the cluster with engine_per_node()")
        })
    }

    /// Machine `i` loses power: its peer, its engine and every container on
    /// it are SIGKILLed at once. Its disk (the peer's data dir, the engine's
    /// data root) stays for [`Cluster::restart_machine`].
    pub fn kill_machine(&mut self, i: usize) {
        self.kill9(i);
        self.engine_mut(i).power_off();
    }

    /// Machine `i` is shut down in order: its peer gets SIGTERM (it leaves
    /// and saves its state), then its engine stops its containers and exits.
    pub fn shut_down_machine(&mut self, i: usize) {
        self.terminate(i);
        self.engine_mut(i).shut_down();
    }

    /// Machine `i` boots again: its engine comes back on the same data root
    /// (the containers that ran show as exited, none runs), then its peer
    /// with the same data dir.
    pub fn restart_machine(&mut self, i: usize) {
        self.engine_mut(i).power_on();
        self.spawn(i);
    }

    /// `(name, state)` of every container of this cluster on machine `i`'s
    /// engine, whatever its state, sorted.
    pub fn machine_containers(&self, i: usize) -> Vec<(String, String)> {
        let filters = [format!("label=io.shoal.cluster={}", self.cluster_id)];
        let host = self.engine(i).host();
        let mut out: Vec<(String, String)> =
            ground_truth::ps(Some(&host), &filters, "{{.Names}} {{.State}}", true)
                .iter()
                .filter_map(|l| l.split_once(' '))
                .map(|(n, s)| (n.to_owned(), s.to_owned()))
                .collect();
        out.sort();
        out
    }
}
