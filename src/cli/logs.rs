//! `shoal logs POD [-f] [-c CONTAINER]`: a pod's output, from whichever
//! node runs it (the peer we ask forwards the request there).

use std::io::Write;

use clap::Args;
use futures_util::StreamExt;

use super::client::{self, Client, ClientArgs, segment};

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Pod name, as `shoal get pods` shows it (e.g. hello-0).
    pub pod: String,
    /// Keep streaming new output.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Container of the pod; the first one by default.
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub fn run(args: &LogsArgs, out: &mut impl Write) -> anyhow::Result<bool> {
    let client = Client::new(&args.client)?;
    client::block_on(logs(&client, args, out))??;
    Ok(true)
}

async fn logs(client: &Client, args: &LogsArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let mut query = vec![("follow", args.follow.to_string())];
    if let Some(container) = &args.container {
        query.push(("container", container.clone()));
    }
    let path = format!("/pods/{}/logs", segment(&args.pod));
    let response = client.stream(&path, &query).await?;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk
            .map_err(|e| anyhow::anyhow!("the log stream from {} broke off: {e}", client.base()))?;
        out.write_all(&chunk)?;
        out.flush()?;
    }
    Ok(())
}
