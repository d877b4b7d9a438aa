//! Payments, and a source of this crate's own that generates them: what a card network's
//! payment feed looks like to the `card-windows` job, written on rill's source interface
//! ([`rill::connectors::source`]). The feed is split into shards (the source's splits); each
//! shard's position is the number of payments read from it, which rill checkpoints and
//! restores, so a restored job reads every shard on from exactly where its checkpoint was.

use rill::api::{JobError, Origin};
use rill::connectors::source::{Source, SourceOutput, SourceSplit, SplitReader, SplitStatus};
use rill::connectors::ConnectorContext;
use serde::{Deserialize, Serialize};

/// One payment with a card.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Payment {
    /// The card number.
    pub card: u64,
    /// Amount in cents.
    pub amount: u64,
    /// When the payment happened (event time, ms).
    pub at_ms: u64,
    /// Where it came from: the shard (or log partition) and its position there.
    pub origin: Origin,
}

/// Cards that pay far more often than the rest when the feed is skewed.
const HOT_CARDS: u64 = 4;

/// A generated payment feed: `shards` shards of `per_shard` payments each, over `cards`
/// cards, `hot_per_mille` of them by one of a few hot cards, one payment every `step_ms` of
/// event time per shard. A pure function of its fields, so every attempt and every replay
/// reads the same payments.
#[derive(Debug, Clone)]
pub struct Payments {
    pub shards: u32,
    pub per_shard: u64,
    pub cards: u64,
    pub hot_per_mille: u64,
    pub seed: u64,
    pub step_ms: u64,
    /// Payments per second over the whole feed (0: as fast as the job takes them).
    pub rate: f64,
}

/// One shard of the feed and how many of its payments were read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub shard: u32,
    pub next: u64,
}

impl SourceSplit for Shard {
    fn split_id(&self) -> String {
        format!("shard-{}", self.shard)
    }
}

impl Payments {
    /// Payment `i` of shard `shard`.
    pub fn payment(&self, shard: u32, i: u64) -> Payment {
        let h = mix(self.seed ^ (u64::from(shard) << 40) ^ i);
        let card = match h % 1000 < self.hot_per_mille {
            true => (h >> 10) % HOT_CARDS,
            false => (h >> 10) % self.cards.max(1),
        };
        Payment {
            card,
            amount: 100 + (h >> 32) % 50_000,
            at_ms: i * self.step_ms,
            origin: Origin {
                partition: shard,
                offset: i,
            },
        }
    }
}

/// splitmix64: a well-mixed 64-bit hash, cheap enough to draw every payment from.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Source<Payment> for Payments {
    type Split = Shard;

    fn splits(&self, _ctx: &dyn ConnectorContext) -> Result<Vec<Shard>, JobError> {
        Ok((0..self.shards)
            .map(|shard| Shard { shard, next: 0 })
            .collect())
    }

    fn reader(
        &self,
        _ctx: &dyn ConnectorContext,
    ) -> Result<Box<dyn SplitReader<Payment, Shard>>, JobError> {
        Ok(Box::new(self.clone()))
    }

    fn rate(&self) -> Option<f64> {
        (self.rate > 0.0).then_some(self.rate)
    }
}

impl SplitReader<Payment, Shard> for Payments {
    fn read(
        &mut self,
        split: &mut Shard,
        max: usize,
        out: &mut SourceOutput<'_, Payment>,
    ) -> Result<SplitStatus, JobError> {
        let left = self.per_shard.saturating_sub(split.next);
        if left == 0 {
            return Ok(SplitStatus::End);
        }
        for _ in 0..left.min(max as u64) {
            let payment = self.payment(split.shard, split.next);
            let at = payment.at_ms;
            out.collect(payment, at);
            split.next += 1;
        }
        Ok(SplitStatus::Read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(hot_per_mille: u64) -> Payments {
        Payments {
            shards: 2,
            per_shard: 1000,
            cards: 1000,
            hot_per_mille,
            seed: 7,
            step_ms: 10,
            rate: 0.0,
        }
    }

    #[test]
    fn the_feed_is_a_function_of_its_position_and_skews_to_the_hot_cards() {
        let (even, skewed) = (feed(0), feed(500));
        assert_eq!(even.payment(1, 5).card, even.payment(1, 5).card);
        assert_eq!(even.payment(1, 5).at_ms, 50);
        let hot = |f: &Payments| {
            (0..1000)
                .filter(|i| f.payment(0, *i).card < HOT_CARDS)
                .count()
        };
        assert!(hot(&even) < 30, "uniform: few payments by the first cards");
        assert!(hot(&skewed) > 400, "skewed: about half by the hot cards");
    }
}
