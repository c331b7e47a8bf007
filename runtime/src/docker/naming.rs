//! How Shoal's pods are written onto the engine: container names, ownership
//! labels, label filters and image references.
//!
//! Everything here is a plain function of its inputs so that a listing read
//! back from the engine maps to exactly the pod that created it.

use std::collections::HashMap;

use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::pod::PodId;
use shoal_crdt_state::spec::TemplateHash;

use crate::vocabulary::labels;

/// One version of one replica: the unit the executor creates and removes.
pub(crate) type PodKey = (PodId, TemplateHash);

/// Who this executor is: it only ever lists and touches containers carrying both labels.
#[derive(Debug, Clone)]
pub(crate) struct Owner {
    pub cluster: String,
    pub node: NodeId,
}

impl Owner {
    /// Label filter selecting every container this executor owns.
    pub fn filters(&self) -> HashMap<String, Vec<String>> {
        HashMap::from([(
            "label".to_string(),
            vec![
                format!("{}={}", labels::CLUSTER, self.cluster),
                format!("{}={}", labels::NODE, self.node),
            ],
        )])
    }

    /// Label filter selecting every container of this cluster, whichever
    /// node started it (to find pods a previous identity left behind).
    pub fn cluster_filters(&self) -> HashMap<String, Vec<String>> {
        HashMap::from([(
            "label".to_string(),
            vec![format!("{}={}", labels::CLUSTER, self.cluster)],
        )])
    }

    /// Label filter selecting one version of one replica started by `node`.
    pub fn foreign_key_filters(&self, node: NodeId, key: &PodKey) -> HashMap<String, Vec<String>> {
        HashMap::from([(
            "label".to_string(),
            vec![
                format!("{}={}", labels::CLUSTER, self.cluster),
                format!("{}={}", labels::NODE, node),
                format!("{}={}", labels::RC, key.0.rc),
                format!("{}={}", labels::REPLICA, key.0.index),
                format!("{}={}", labels::TEMPLATE, template_label(key.1)),
            ],
        )])
    }

    /// Label filter selecting the containers of one replica (every template version).
    pub fn pod_filters(&self, pod: &PodId) -> HashMap<String, Vec<String>> {
        let mut filters = self.filters();
        let label = filters.get_mut("label").expect("filters() sets labels");
        label.push(format!("{}={}", labels::RC, pod.rc));
        label.push(format!("{}={}", labels::REPLICA, pod.index));
        filters
    }

    /// Label filter selecting the containers of one version of one replica.
    pub fn key_filters(&self, key: &PodKey) -> HashMap<String, Vec<String>> {
        let mut filters = self.pod_filters(&key.0);
        let label = filters.get_mut("label").expect("filters() sets labels");
        label.push(format!("{}={}", labels::TEMPLATE, template_label(key.1)));
        filters
    }

    /// Labels of container `index` (named `name`) of a pod of `size` containers.
    pub fn container_labels(
        &self,
        key: &PodKey,
        name: &str,
        index: usize,
        size: usize,
    ) -> HashMap<String, String> {
        HashMap::from([
            (labels::MANAGED.to_string(), "true".to_string()),
            (labels::CLUSTER.to_string(), self.cluster.clone()),
            (labels::NODE.to_string(), self.node.to_string()),
            (labels::RC.to_string(), key.0.rc.clone()),
            (labels::REPLICA.to_string(), key.0.index.to_string()),
            (labels::TEMPLATE.to_string(), template_label(key.1)),
            (labels::CONTAINER.to_string(), name.to_string()),
            (labels::CONTAINER_INDEX.to_string(), index.to_string()),
            (labels::POD_SIZE.to_string(), size.to_string()),
        ])
    }

    /// Engine-wide unique name: two peers sharing an engine never collide, and
    /// a second create of the same pod fails with a conflict instead of duplicating it.
    pub fn container_name(&self, key: &PodKey, container: &str) -> String {
        let raw = format!(
            "shoal-{}-{}-{}-{}-{}-{}",
            self.cluster,
            self.node,
            key.0.rc,
            key.0.index,
            template_label(key.1),
            container
        );
        raw.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }
}

/// The template label: the full hash, so it reads back exactly.
pub(crate) fn template_label(hash: TemplateHash) -> String {
    format!("{:016x}", hash.0)
}

/// Where a listed container belongs, read back from its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placement {
    pub key: PodKey,
    pub index: usize,
    pub size: usize,
}

/// Reads a container's labels back into its pod; `None` for a container that
/// lacks or garbles them (never ours to manage).
/// The node id a container's labels name, if any.
pub(crate) fn node_of(labels_of: &HashMap<String, String>) -> Option<NodeId> {
    u64::from_str_radix(labels_of.get(labels::NODE)?, 16)
        .ok()
        .map(NodeId)
}

pub(crate) fn placement(labels_of: &HashMap<String, String>) -> Option<Placement> {
    let rc = labels_of.get(labels::RC)?.clone();
    let index: u32 = labels_of.get(labels::REPLICA)?.parse().ok()?;
    let hash = u64::from_str_radix(labels_of.get(labels::TEMPLATE)?, 16).ok()?;
    let container_index = labels_of.get(labels::CONTAINER_INDEX)?.parse().ok()?;
    let size = labels_of.get(labels::POD_SIZE)?.parse().ok()?;
    Some(Placement {
        key: (PodId { rc, index }, TemplateHash(hash)),
        index: container_index,
        size,
    })
}

/// Splits an image reference into what the pull API wants: repository and an
/// explicit tag (or digest). Never returns an empty tag: the engine would pull
/// every tag of the repository.
pub(crate) fn image_pull_ref(image: &str) -> (String, String) {
    if let Some((name, digest)) = image.split_once('@') {
        // `name:tag@digest` pins the digest; the tag is only a label then.
        let repo = image_pull_ref(name).0;
        return (repo, digest.to_string());
    }
    let last_segment_start = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_segment_start..].rfind(':') {
        Some(colon) => {
            let split = last_segment_start + colon;
            (image[..split].to_string(), image[split + 1..].to_string())
        }
        None => (image.to_string(), "latest".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Owner {
        Owner {
            cluster: "c1".into(),
            node: NodeId(0xab),
        }
    }

    fn key() -> PodKey {
        (
            PodId {
                rc: "hello".into(),
                index: 3,
            },
            TemplateHash(0x0123_4567_89ab_cdef),
        )
    }

    #[test]
    fn labels_written_on_a_container_read_back_to_the_same_pod() {
        let labels_of = owner().container_labels(&key(), "web", 1, 2);
        assert_eq!(
            placement(&labels_of),
            Some(Placement {
                key: key(),
                index: 1,
                size: 2
            })
        );
    }

    #[test]
    fn a_container_without_our_labels_belongs_to_no_pod() {
        let mut labels_of = owner().container_labels(&key(), "web", 0, 1);
        labels_of.remove(labels::TEMPLATE);
        assert_eq!(placement(&labels_of), None);
    }

    #[test]
    fn names_are_valid_for_the_engine_and_distinct_per_node() {
        let mut other = owner();
        other.node = NodeId(0xac);
        let weird = Owner {
            cluster: "my cluster/1".into(),
            node: NodeId(1),
        };
        let name = weird.container_name(&key(), "web");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        );
        assert_ne!(
            owner().container_name(&key(), "web"),
            other.container_name(&key(), "web")
        );
    }

    #[test]
    fn pulls_always_name_a_tag() {
        assert_eq!(
            image_pull_ref("busybox"),
            ("busybox".into(), "latest".into())
        );
        assert_eq!(
            image_pull_ref("shoal-test/hello:1.0"),
            ("shoal-test/hello".into(), "1.0".into())
        );
        assert_eq!(
            image_pull_ref("localhost:5000/app"),
            ("localhost:5000/app".into(), "latest".into())
        );
        assert_eq!(
            image_pull_ref("localhost:5000/app:2"),
            ("localhost:5000/app".into(), "2".into())
        );
        assert_eq!(
            image_pull_ref("app@sha256:abc"),
            ("app".into(), "sha256:abc".into())
        );
        assert_eq!(
            image_pull_ref("localhost:5000/app:2@sha256:abc"),
            ("localhost:5000/app".into(), "sha256:abc".into())
        );
    }
}
