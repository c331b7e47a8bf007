//! Image export and load on the real engine: what a peer sends is the
//! engine's own export, and what it receives is loaded only if it has the
//! ID its holder announced. Each test tags the test image under a name of
//! its own and removes only that tag.
#![cfg(feature = "docker")]

mod support;

use std::process::Command;

use bytes::Bytes;
use futures_util::StreamExt;
use shoal_runtime::docker::{ImageArchive, LoadError};
use support::*;

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn image_id(reference: &str) -> Option<String> {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", reference])
        .output()
        .expect("docker image inspect");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `docker save` of `source` under the tag `tag`, which is gone again
/// afterwards (the image itself stays, under its own tags).
fn archive_as(source: &str, tag: &str) -> Vec<u8> {
    docker(&["tag", source, tag]);
    let out = Command::new("docker")
        .args(["save", tag])
        .output()
        .expect("docker save");
    assert!(out.status.success());
    docker(&["image", "rm", tag]);
    assert_eq!(image_id(tag), None);
    out.stdout
}

fn stream_of(bytes: Vec<u8>) -> ImageArchive {
    let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(64 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures_util::stream::iter(chunks))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_is_kept_only_under_the_announced_id() {
    ensure_test_images();
    let cluster = unique_cluster("imgload");
    let (rt, _rx) = connect(&cluster, 1).await;
    let tag = format!("shoal-test/{cluster}:x");
    let hello_10 = image_id(HELLO_10).unwrap();
    let hello_11 = image_id(HELLO_11).unwrap();
    let archive = archive_as(HELLO_11, &tag);

    // Announced as 1.0 but holding 1.1: refused, and the tag is gone.
    let refused = rt
        .load_image(stream_of(archive.clone()), &tag, &hello_10)
        .await;
    assert!(
        matches!(&refused, Err(LoadError::WrongId { found, .. }) if *found == hello_11),
        "{refused:?}"
    );
    assert_eq!(image_id(&tag), None, "a refused image kept its tag");

    // Cut short: the engine refuses it, nothing is tagged.
    let cut = archive[..archive.len() / 2].to_vec();
    let refused = rt.load_image(stream_of(cut), &tag, &hello_11).await;
    assert!(refused.is_err(), "half an archive loaded");
    assert_eq!(image_id(&tag), None);

    // The stream fails midway (a holder that died): refused too.
    let mut failing: Vec<Result<Bytes, std::io::Error>> =
        vec![Ok(Bytes::copy_from_slice(&archive[..4096]))];
    failing.push(Err(std::io::Error::other("holder gone")));
    let refused = rt
        .load_image(
            Box::pin(futures_util::stream::iter(failing)),
            &tag,
            &hello_11,
        )
        .await;
    assert!(refused.is_err(), "a failed stream loaded");
    assert_eq!(image_id(&tag), None);

    // The whole archive under its own ID: loaded.
    rt.load_image(stream_of(archive), &tag, &hello_11)
        .await
        .expect("the right image loads");
    assert_eq!(image_id(&tag), Some(hello_11.clone()));
    let held = rt
        .image_ids([tag.clone(), format!("shoal-test/{cluster}:absent")])
        .await
        .unwrap();
    assert_eq!(
        held.into_iter().collect::<Vec<_>>(),
        vec![(tag.clone(), hello_11)]
    );
    docker(&["image", "rm", &tag]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_is_what_docker_save_writes() {
    ensure_test_images();
    let cluster = unique_cluster("imgexport");
    let (rt, _rx) = connect(&cluster, 1).await;
    let mut exported = Vec::new();
    let mut archive = rt.export_image(HELLO_10).unwrap();
    while let Some(chunk) = archive.next().await {
        exported.extend_from_slice(&chunk.unwrap());
    }
    // A tar archive holding the image's manifest.
    assert!(exported.len() > 100_000, "{} bytes", exported.len());
    assert_eq!(exported.len() % 512, 0, "not a tar archive");
    let text = String::from_utf8_lossy(&exported);
    assert!(text.contains("manifest.json"), "no manifest in the export");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_archive_reports_what_it_loaded() {
    ensure_test_images();
    let cluster = unique_cluster("imgseed");
    let (rt, _rx) = connect(&cluster, 1).await;
    let tag = format!("shoal-test/{cluster}:seed");
    let hello_11 = image_id(HELLO_11).unwrap();
    let archive = archive_as(HELLO_11, &tag);

    let loaded = rt.load_archive(stream_of(archive.clone())).await.unwrap();
    assert_eq!(loaded.len(), 1, "{loaded:?}");
    assert_eq!(loaded[0].reference.as_deref(), Some(tag.as_str()));
    assert_eq!(loaded[0].id, hello_11);
    assert_eq!(image_id(&tag), Some(hello_11));
    docker(&["image", "rm", &tag]);

    // Not an archive: refused with the engine's reason, nothing tagged.
    let refused = rt.load_archive(stream_of(b"not a tar".repeat(100))).await;
    assert!(matches!(refused, Err(LoadError::Refused(_))), "{refused:?}");
    assert_eq!(image_id(&tag), None);
}
