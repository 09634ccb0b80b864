//! HTTPS downloads for optional models that no registry carries: resumable, with a stall
//! timeout, never trusting a file until its digest matches.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::StatusCode;
use tokio::io::AsyncWriteExt as _;

/// Downloads `url` into `part`, resuming from what `part` already holds. Returns when the
/// server has sent everything; the caller verifies and renames.
pub async fn download(url: &str, part: &Path, stall: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().connect_timeout(stall).user_agent(concat!("hiwar/", env!("CARGO_PKG_VERSION"))).build().context("HTTP client")?;
    for attempt in 0..2 {
        let have = tokio::fs::metadata(part).await.map_or(0, |m| m.len());
        let mut request = client.get(url);
        if have > 0 {
            request = request.header(reqwest::header::RANGE, format!("bytes={have}-"));
        }
        let mut response = tokio::time::timeout(stall, request.send())
            .await
            .map_err(|_| anyhow::anyhow!("{url}: no answer within {} s", stall.as_secs()))?
            .with_context(|| format!("cannot reach {url}: is this machine online?"))?;
        let status = response.status();
        let (mut file, start) = match status {
            StatusCode::PARTIAL_CONTENT if have > 0 => (tokio::fs::OpenOptions::new().append(true).open(part).await?, have),
            StatusCode::OK => (tokio::fs::File::create(part).await.with_context(|| format!("cannot write {}", part.display()))?, 0),
            StatusCode::RANGE_NOT_SATISFIABLE if attempt == 0 => {
                // The partial file is as long as the whole, or longer: start again.
                tokio::fs::remove_file(part).await.ok();
                continue;
            }
            StatusCode::NOT_FOUND => bail!("{url}: not found (HTTP 404); the publisher may have moved it — check the manifest's url"),
            other => bail!("{url}: the server answered HTTP {other}"),
        };
        let total = response.content_length().map(|len| len + start);
        let bar = total.map_or_else(ProgressBar::new_spinner, ProgressBar::new);
        bar.set_style(
            ProgressStyle::with_template("  {bytes}/{total_bytes} {wide_bar} {bytes_per_sec} eta {eta}").unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_position(start);
        loop {
            let chunk = tokio::time::timeout(stall, response.chunk()).await.map_err(|_| {
                anyhow::anyhow!("{url}: stalled, no data for {} s; the partial file is kept — run the same command again to resume", stall.as_secs())
            })?;
            let chunk = chunk.with_context(|| format!("{url}: connection lost; run the same command again to resume"))?;
            let Some(chunk) = chunk else { break };
            file.write_all(&chunk).await.with_context(|| format!("cannot write {}", part.display()))?;
            bar.inc(chunk.len() as u64);
        }
        file.flush().await?;
        file.sync_all().await?;
        bar.finish_and_clear();
        let got = tokio::fs::metadata(part).await?.len();
        if let Some(total) = total
            && got != total
        {
            bail!("{url}: the server sent {got} of {total} bytes; run the same command again to resume");
        }
        return Ok(());
    }
    bail!("{url}: the server refused to resume and to restart the download")
}
