//! Images on a machine's own engine (clusters started with
//! `engine_per_node()`), as the image tests check and arrange them.

use super::Cluster;

/// The ID engine `i` holds `reference` as, if it holds it.
pub fn image_id(cluster: &Cluster, i: usize, reference: &str) -> Option<String> {
    let out = cluster
        .engine(i)
        .docker()
        .args(["image", "inspect", "--format", "{{.Id}}", reference])
        .output()
        .expect("docker image inspect");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Removes `reference` from engine `i`; fails the test if it cannot.
pub fn remove_image(cluster: &Cluster, i: usize, reference: &str) {
    let out = cluster
        .engine(i)
        .docker()
        .args(["image", "rm", reference])
        .output()
        .expect("docker image rm");
    assert!(
        out.status.success(),
        "docker image rm {reference} on machine {i}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
