//! `shoal image load -i FILE.tar` (or `-i -` for stdin): seeds the cluster
//! with an image archive (`docker save` format) by streaming it into the
//! engine of the peer the CLI talks to. Peers then hand it to each other.

use std::io::{Read, Write};

use anyhow::Context;
use bytes::Bytes;
use clap::{Args, Subcommand};

use super::Io;
use super::client::{self, Client, ClientArgs};
use crate::shell::api::models::LoadedImageJson;

/// Bytes read from the archive per chunk sent.
const CHUNK: usize = 256 * 1024;
/// Chunks read ahead of the upload.
const READ_AHEAD: usize = 8;

#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Load an image archive (`docker save` format) into the peer's engine.
    Load(LoadArgs),
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The archive, as `docker save -o` writes it; `-` reads standard input.
    #[arg(short = 'i', long = "input", value_name = "FILE")]
    pub input: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub fn run<R: Read, O: Write, E: Write>(
    args: &ImageArgs,
    io: &mut Io<'_, R, O, E>,
) -> anyhow::Result<bool> {
    let ImageCommand::Load(args) = &args.command;
    let client = Client::new(&args.client)?;
    let loaded = if args.input == "-" {
        upload(&client, io.stdin, "standard input")?
    } else {
        let mut file = std::fs::File::open(&args.input)
            .with_context(|| format!("cannot open the image archive {}", args.input))?;
        upload(&client, &mut file, &args.input)?
    };
    for image in loaded {
        match image.reference {
            Some(reference) => writeln!(io.stdout, "Loaded image: {reference} ({})", image.id)?,
            None => writeln!(io.stdout, "Loaded image ID: {}", image.id)?,
        }
    }
    Ok(true)
}

/// Streams `source` to the peer: this thread reads, another sends, so
/// neither the archive nor standard input has to be `Send` or held whole.
fn upload(
    client: &Client,
    source: &mut dyn Read,
    name: &str,
) -> anyhow::Result<Vec<LoadedImageJson>> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(READ_AHEAD);
    std::thread::scope(|scope| {
        let sender = scope.spawn(move || {
            let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
            client::block_on(client.post_stream::<Vec<LoadedImageJson>>(
                "/images/load",
                reqwest::Body::wrap_stream(body),
            ))?
        });
        let mut read_error = None;
        loop {
            let mut chunk = vec![0u8; CHUNK];
            match source.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    chunk.truncate(n);
                    // A closed channel: the upload ended early; its error says why.
                    if tx.blocking_send(Ok(Bytes::from(chunk))).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                    read_error = Some(e);
                    break;
                }
            }
        }
        drop(tx);
        let outcome = sender.join().expect("the upload thread panicked");
        if let Some(e) = read_error {
            return Err(anyhow::Error::new(e).context(format!("reading the image archive {name}")));
        }
        outcome
    })
}
