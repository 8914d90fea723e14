//! burn `DataLoader`s whose batches are a function of the run's seed and the epoch.
//!
//! burn's `DataLoaderBuilder::shuffle(seed)` advances one random generator across epochs,
//! and no checkpoint holds it: a resumed run would see other batches than the uninterrupted
//! one. [`SeededLoader`] draws epoch `e`'s order from `seed.stream(Shuffle).child(e)` and
//! gives batch `b` the noise seed `seed.stream(Noise).child(e).child(b)` (the test loader:
//! `Evaluation`, chunks of [`EVAL_ROWS`]), the draws of credit's own loop before it. Items
//! come from a burn [`Dataset`] and are batched by a burn [`Batcher`].

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderIterator, Progress};
use burn::data::dataset::{Dataset, DatasetError};
use burn::tensor::Device;
use credit_data::{ImageBatch, ImageBatcher, ImageItem, ImageSet};
use credit_model::{NoisyBatch, Seed, Stream};
use rand::seq::SliceRandom;
use rayon::prelude::*;

use super::ledger::Ledger;
use crate::config::{EVAL_ROWS, RunConfig};

/// How a loader orders and cuts an epoch.
#[derive(Debug, Clone, Copy)]
enum Order {
    /// Training: shuffled from the shuffle stream (if `shuffle`), batches of `batch`, the last
    /// partial one dropped if `drop_last`, only the first `limit` batches if set; noise from
    /// the noise stream.
    Train {
        batch: usize,
        shuffle: bool,
        drop_last: bool,
        limit: Option<usize>,
    },
    /// Evaluation: in order, chunks of [`EVAL_ROWS`]; noise from the evaluation stream.
    Test,
}

/// The batches of one split, epoch after epoch: the `k`-th call of `iter` gives epoch
/// `first + k`.
#[derive(Clone)]
pub(crate) struct SeededLoader {
    dataset: Arc<dyn Dataset<ImageItem>>,
    batcher: Arc<dyn Batcher<ImageItem, ImageBatch>>,
    order: Order,
    seed: Seed,
    next_epoch: Arc<AtomicUsize>,
    /// Positions of the epoch's order this loader serves (all, unless sliced for one of
    /// several devices).
    positions: Option<Range<usize>>,
    device: Device,
    /// Told when a training epoch starts and ends (for its wall-clock seconds).
    ledger: Option<Arc<Ledger>>,
}

impl SeededLoader {
    /// The training batches of `config` over `set`, from epoch `first` on.
    pub(crate) fn train(
        config: &RunConfig,
        set: &ImageSet,
        first: usize,
        device: &Device,
        ledger: Arc<Ledger>,
    ) -> Self {
        let train = &config.train;
        Self::new(
            set,
            Order::Train {
                batch: train.batch_size,
                shuffle: train.shuffle,
                drop_last: train.drop_last,
                limit: train.batches_per_epoch,
            },
            Seed::new(config.seed),
            first,
            device,
            Some(ledger),
        )
    }

    /// The test chunks of `config` over `set`, from epoch `first` on.
    pub(crate) fn test(config: &RunConfig, set: &ImageSet, first: usize, device: &Device) -> Self {
        Self::new(
            set,
            Order::Test,
            Seed::new(config.seed),
            first,
            device,
            None,
        )
    }

    fn new(
        set: &ImageSet,
        order: Order,
        seed: Seed,
        first: usize,
        device: &Device,
        ledger: Option<Arc<Ledger>>,
    ) -> Self {
        Self {
            dataset: Arc::new(set.clone()),
            batcher: Arc::new(ImageBatcher::new(set.features())),
            order,
            seed,
            next_epoch: Arc::new(AtomicUsize::new(first)),
            positions: None,
            device: device.clone(),
            ledger,
        }
    }

    /// The batches of epoch `epoch`: dataset indices and the key of each batch's noise.
    fn batches(&self, epoch: usize) -> Vec<(Vec<usize>, u64)> {
        let n = self.dataset.len();
        let (order, size, drop_last, limit) = match self.order {
            Order::Train {
                batch,
                shuffle,
                drop_last,
                limit,
            } => {
                let mut order: Vec<usize> = (0..n).collect();
                if shuffle {
                    let rng = &mut self.seed.stream(Stream::Shuffle).child(epoch as u64).rng();
                    order.shuffle(rng);
                }
                (order, batch, drop_last, limit)
            }
            Order::Test => ((0..n).collect(), EVAL_ROWS, false, None),
        };
        let (served, offset) = match &self.positions {
            Some(range) => (&order[range.clone()], Some(range.start)),
            None => (&order[..], None),
        };
        let mut batches: Vec<(Vec<usize>, u64)> = served
            .chunks(size.max(1))
            .enumerate()
            .map(|(b, indices)| {
                // A slice (one of several devices) keys its noise by the position of its
                // batch's first image, apart from the unsliced batch numbers.
                let key = match offset {
                    None => b as u64,
                    Some(start) => (1 << 40) + (start + b * size) as u64,
                };
                (indices.to_vec(), key)
            })
            .collect();
        if drop_last && batches.last().is_some_and(|(b, _)| b.len() < size) {
            batches.pop();
        }
        if let Some(limit) = limit {
            batches.truncate(limit);
        }
        batches
    }

    fn stream(&self) -> Stream {
        match self.order {
            Order::Train { .. } => Stream::Noise,
            Order::Test => Stream::Evaluation,
        }
    }
}

impl DataLoader<NoisyBatch> for SeededLoader {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<NoisyBatch> + 'a> {
        let epoch = self.next_epoch.fetch_add(1, Ordering::SeqCst);
        if let Some(ledger) = &self.ledger {
            ledger.wait_committed(epoch - 1);
            ledger.training_started(epoch);
        }
        let batches = self.batches(epoch);
        let total = batches.iter().map(|(b, _)| b.len()).sum();
        Box::new(EpochIter {
            loader: self,
            noise: self.seed.stream(self.stream()).child(epoch as u64),
            network: matches!(self.order, Order::Test)
                .then(|| self.seed.stream(Stream::Sampling).child(epoch as u64)),
            epoch,
            batches: batches.into_iter(),
            processed: 0,
            total,
        })
    }

    /// The images of an epoch this loader gives (all of its share, less a last partial
    /// batch that `drop_last` leaves out), as its iterator's progress counts them.
    fn num_items(&self) -> usize {
        let served = match &self.positions {
            Some(range) => range.len(),
            None => self.dataset.len(),
        };
        let served = match self.order {
            Order::Train {
                batch,
                drop_last: true,
                ..
            } => served / batch.max(1) * batch.max(1),
            _ => served,
        };
        match self.order {
            Order::Train {
                batch,
                limit: Some(limit),
                ..
            } => served.min(limit.saturating_mul(batch.max(1))),
            _ => served,
        }
    }

    fn to_device(&self, device: &Device) -> Arc<dyn DataLoader<NoisyBatch>> {
        Arc::new(Self {
            device: device.clone(),
            next_epoch: Arc::new(AtomicUsize::new(self.next_epoch.load(Ordering::SeqCst))),
            ..self.clone()
        })
    }

    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<NoisyBatch>> {
        let base = self.positions.clone().map_or(0, |r| r.start);
        Arc::new(Self {
            positions: Some(base + start..base + end),
            next_epoch: Arc::new(AtomicUsize::new(self.next_epoch.load(Ordering::SeqCst))),
            ..self.clone()
        })
    }
}

/// The batches of one epoch.
struct EpochIter<'a> {
    loader: &'a SeededLoader,
    noise: Seed,
    /// The sampled network of the epoch's test split (`Stream::Sampling`, the epoch).
    network: Option<Seed>,
    epoch: usize,
    batches: std::vec::IntoIter<(Vec<usize>, u64)>,
    processed: usize,
    total: usize,
}

impl Iterator for EpochIter<'_> {
    type Item = Result<NoisyBatch, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        // A stop asked for (or a failure) ends the epoch before another batch is drawn: its
        // work is discarded anyway.
        if self.loader.ledger.as_ref().is_some_and(|l| l.stopping()) {
            return None;
        }
        let Some((indices, key)) = self.batches.next() else {
            if let Some(ledger) = &self.loader.ledger {
                ledger.training_ended(self.epoch);
            }
            return None;
        };
        self.processed += indices.len();
        let dataset = &self.loader.dataset;
        let items: Result<Vec<ImageItem>, DatasetError> =
            indices.par_iter().map(|&i| dataset.get(i)).collect();
        Some(items.map(|items| {
            let batch = self.loader.batcher.batch(items, &self.loader.device);
            NoisyBatch {
                images: batch.images,
                targets: batch.targets,
                noise: self.noise.child(key),
                key,
                network: self.network,
            }
        }))
    }
}

impl DataLoaderIterator<NoisyBatch> for EpochIter<'_> {
    fn progress(&self) -> Progress {
        Progress::new(self.processed, self.total, Some("images".to_string()))
    }
}
