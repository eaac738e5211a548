//! Feeding an image's layers from the blob store to the (synchronous) inventory, one layer
//! at a time through a small bounded channel, so memory stays constant whatever the size.

use crate::ports::BlobStore;
use berth_oci::Descriptor;
use berth_scan::inventory::{InventoryBuilder, Limits};
use berth_scan::Inventory;
use bytes::Bytes;
use futures_util::StreamExt;
use std::io::Read;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Chunks in flight between the blob store and the reader.
const CHANNEL_CHUNKS: usize = 4;

/// A blocking `Read` over chunks sent from the async side.
struct ChannelReader {
    receiver: mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.receiver.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(error)) => return Err(error),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Whether a layer descriptor is a file-system layer the scanner reads (non-distributable
/// layers are not in the registry).
pub(super) fn is_filesystem_layer(media_type: &str) -> bool {
    let tar_layer = media_type.starts_with("application/vnd.oci.image.layer.v1.tar")
        || media_type == "application/vnd.docker.image.rootfs.diff.tar.gzip"
        || media_type == "application/vnd.docker.image.rootfs.diff.tar";
    tar_layer && !media_type.contains("nondistributable")
}

/// The inventory of the layers, bottom first; a layer that cannot be read is noted in the
/// inventory's warnings and the others still count.
pub(super) async fn inventory(
    blobs: Arc<dyn BlobStore>,
    layers: &[Descriptor],
    limits: Limits,
) -> Inventory {
    let handle = tokio::runtime::Handle::current();
    let layers: Vec<Descriptor> = layers.to_vec();
    let work = tokio::task::spawn_blocking(move || {
        let mut builder = InventoryBuilder::new(limits);
        for layer in layers {
            let name = layer.digest.to_string();
            if !is_filesystem_layer(&layer.media_type) {
                builder.note_layer_error(
                    &name,
                    &berth_scan::inventory::LayerError::Corrupt(format!(
                        "media type {} is not a file-system layer",
                        layer.media_type
                    )),
                );
                continue;
            }
            let (sender, receiver) = mpsc::channel(CHANNEL_CHUNKS);
            let blobs = blobs.clone();
            let digest = layer.digest.clone();
            let pump = handle.spawn(async move {
                match blobs.read_blob(&digest, None).await {
                    Ok(mut stream) => {
                        while let Some(chunk) = stream.next().await {
                            // The reader stopped (a limit, a corrupt layer): stop reading.
                            if sender.send(chunk).await.is_err() {
                                break;
                            }
                        }
                    }
                    Err(error) => {
                        let _ = sender
                            .send(Err(std::io::Error::other(error.to_string())))
                            .await;
                    }
                }
            });
            let reader = ChannelReader {
                receiver,
                current: Bytes::new(),
            };
            if let Err(error) = builder.add_layer(reader) {
                builder.note_layer_error(&name, &error);
            }
            pump.abort();
        }
        builder.finish()
    });
    match work.await {
        Ok(inventory) => inventory,
        Err(error) => Inventory {
            warnings: vec![format!("the inventory stopped: {error}")],
            ..Inventory::default()
        },
    }
}
