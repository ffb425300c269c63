//! Group commit: requests that arrive while a transaction is in flight wait
//! for the next one and share it, so the commit (and its fsync) is paid
//! once per batch, not once per signature. A lone request is written at
//! once: nothing waits for a batch to fill.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::{mpsc, oneshot};

use super::{Database, StoreError};

type Reply<Out> = oneshot::Sender<Result<Out, StoreError>>;

/// Writes one batch in one transaction: one output per input, in order.
pub type BatchFn<In, Out> = Box<
    dyn Fn(Database, Vec<In>) -> Pin<Box<dyn Future<Output = Result<Vec<Out>, StoreError>> + Send>>
        + Send
        + Sync,
>;

/// A queue in front of one writer task.
pub struct GroupCommit<In, Out> {
    queue: mpsc::Sender<(In, Reply<Out>)>,
}

impl<In, Out> Clone for GroupCommit<In, Out> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<In: Send + 'static, Out: Send + 'static> GroupCommit<In, Out> {
    /// Starts the writer on the database's runtime; batches hold at most
    /// `max_batch` items.
    pub fn spawn(database: Database, max_batch: usize, write: BatchFn<In, Out>) -> Self {
        let (queue, mut incoming) = mpsc::channel::<(In, Reply<Out>)>(max_batch * 4);
        let runtime = database.handle().clone();
        runtime.spawn(async move {
            let mut batch = Vec::with_capacity(max_batch);
            while incoming.recv_many(&mut batch, max_batch).await > 0 {
                let (items, replies): (Vec<In>, Vec<Reply<Out>>) = batch.drain(..).unzip();
                match write(database.clone(), items).await {
                    Ok(outs) => {
                        debug_assert_eq!(outs.len(), replies.len());
                        for (reply, out) in replies.into_iter().zip(outs) {
                            let _ = reply.send(Ok(out));
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, source = ?std::error::Error::source(&e), "group commit failed");
                        for reply in replies {
                            let _ = reply.send(Err(StoreError::Invalid(e.to_string())));
                        }
                    }
                }
            }
        });
        Self { queue }
    }

    /// Queues `item` and waits for the transaction that writes it.
    pub async fn submit(&self, item: In) -> Result<Out, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((item, reply))
            .await
            .map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }
}
