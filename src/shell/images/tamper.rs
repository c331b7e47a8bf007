//! Test hook (feature `test-hooks`, absent from release builds): a holder
//! whose environment sets [`TAMPER_ENV`] to `1` flips a byte in every piece
//! of the image archives it sends, after its engine exported them, as a
//! faulty link or a lying member would. Tests use it to check that the
//! requester refuses the image and gets it from another holder.

use std::sync::LazyLock;

use bytes::{Bytes, BytesMut};

/// The environment variable that turns the hook on for one peer.
pub const TAMPER_ENV: &str = "SHOAL_TEST_TAMPER_IMAGE_STREAM";

static TAMPER: LazyLock<bool> = LazyLock::new(|| {
    let on = std::env::var(TAMPER_ENV).is_ok_and(|v| v == "1");
    if on {
        tracing::warn!("{TAMPER_ENV}=1: this peer corrupts every image it serves (test hook)");
    }
    on
});

/// `chunk` as this peer puts it on the wire: unchanged, or with its middle
/// byte flipped when the hook is on.
pub fn on_the_wire(chunk: Bytes) -> Bytes {
    if !*TAMPER || chunk.is_empty() {
        return chunk;
    }
    let mut bytes = BytesMut::from(&chunk[..]);
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    bytes.freeze()
}
