//! `sweep --shard K/N`: the K-th of N disjoint slices of a sweep's seeds, so that many machines
//! (a CI matrix, a Kubernetes Indexed Job) share one sweep with no coordinator.
//!
//! The rule: the seeds, without repeats, in the order given; shard K takes those at positions
//! K, K+N, K+2N, ... (K counts from 0, as Kubernetes' `JOB_COMPLETION_INDEX` does). For a range
//! `A..B` that is every N-th seed starting at A+K, so seeds that are slow for a reason tied to
//! their neighbourhood spread over the shards, and the shards' sizes differ by one at most.

use std::fmt;
use std::str::FromStr;

/// One slice of a sweep: `index` of `count`, `index` in `0..count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// The whole sweep: one shard of one.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// This shard's seeds out of `seeds` (repeats dropped), in their order.
    pub fn select(&self, seeds: &[u64]) -> Vec<u64> {
        distinct(seeds)
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % self.count == self.index)
            .map(|(_, seed)| seed)
            .collect()
    }

    /// Every shard of the same count, this one included, from 0.
    pub fn siblings(&self) -> impl Iterator<Item = Shard> {
        let count = self.count;
        (0..count).map(move |index| Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        let usage = || {
            format!(
                "'{text}' is not a shard K/N: N shards numbered from 0 (0/4, 1/4, 2/4, 3/4; \
                 Kubernetes' JOB_COMPLETION_INDEX counts the same way)"
            )
        };
        let (k, n) = text.trim().split_once('/').ok_or_else(usage)?;
        let (index, count): (usize, usize) = (
            k.trim().parse().map_err(|_| usage())?,
            n.trim().parse().map_err(|_| usage())?,
        );
        if count == 0 {
            return Err(format!(
                "'{text}': N, the number of shards, must be at least 1"
            ));
        }
        if index >= count {
            return Err(format!(
                "'{text}': shards are numbered from 0, so K must be below N (0/{count} .. {}/{count})",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }
}

/// `seeds` without repeats, first occurrences in order.
pub(super) fn distinct(seeds: &[u64]) -> Vec<u64> {
    let mut seen = std::collections::HashSet::new();
    seeds.iter().copied().filter(|s| seen.insert(*s)).collect()
}

/// Seeds as `testing::parse_seeds` reads them back: runs of consecutive seeds as `A..B`
/// (B exclusive), the others one by one, in order (`1..9`, `0..4,7,10..12`).
pub(super) fn format_seeds(seeds: &[u64]) -> String {
    let mut items: Vec<String> = Vec::new();
    let mut i = 0;
    while i < seeds.len() {
        let start = seeds[i];
        let mut end = i;
        while end + 1 < seeds.len() && seeds[end].checked_add(1) == Some(seeds[end + 1]) {
            end += 1;
        }
        items.push(match end - i {
            0 => start.to_string(),
            _ => match seeds[end].checked_add(1) {
                Some(past) => format!("{start}..{past}"),
                // u64::MAX cannot close a range (B is exclusive): list it after the rest.
                None => format!("{start}..{},{}", seeds[end], seeds[end]),
            },
        });
        i = end + 1;
    }
    items.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::parse_seeds;

    /// Every seed of the range is in exactly one shard, the shards together are the range, and
    /// their sizes differ by one at most.
    #[test]
    fn every_seed_is_in_exactly_one_shard() {
        let ranges: [&[u64]; 6] = [
            &[0],
            &[5, 6, 7],
            &(1..9).collect::<Vec<_>>(),
            &(0..100).collect::<Vec<_>>(),
            &(10_000..12_001).collect::<Vec<_>>(),
            &[9, 3, 3, 40, 41, 7, 9],
        ];
        for seeds in ranges {
            let all = distinct(seeds);
            for count in [1, 2, 3, 4, 7, 10, 16, 101, 2_001] {
                let shards: Vec<Vec<u64>> = Shard { index: 0, count }
                    .siblings()
                    .map(|s| s.select(seeds))
                    .collect();
                let mut holders = std::collections::HashMap::new();
                for seed in shards.iter().flatten() {
                    *holders.entry(*seed).or_insert(0) += 1;
                }
                for seed in &all {
                    assert_eq!(holders.get(seed), Some(&1), "seed {seed} in {count} shards");
                }
                assert_eq!(holders.len(), all.len(), "{count} shards hold other seeds");
                let sizes = shards.iter().map(Vec::len);
                let (min, max) = (sizes.clone().min().unwrap(), sizes.max().unwrap());
                assert!(max - min <= 1, "{count} shards: sizes {min}..={max}");
            }
        }
    }

    #[test]
    fn a_shard_of_a_range_is_every_nth_seed() {
        let seeds: Vec<u64> = (1..9).collect();
        let shard = |index| Shard { index, count: 3 }.select(&seeds);
        assert_eq!(shard(0), [1, 4, 7]);
        assert_eq!(shard(1), [2, 5, 8]);
        assert_eq!(shard(2), [3, 6]);
        assert_eq!(Shard::ALL.select(&[3, 1, 3]), [3, 1]);
        assert_eq!(
            Shard { index: 5, count: 8 }.select(&seeds[..4]),
            [] as [u64; 0]
        );
    }

    #[test]
    fn shards_count_from_zero_and_below_n() {
        assert_eq!("0/4".parse(), Ok(Shard { index: 0, count: 4 }));
        assert_eq!(" 3 / 4 ".parse(), Ok(Shard { index: 3, count: 4 }));
        assert_eq!("0/1".parse(), Ok(Shard::ALL));
        assert_eq!(Shard { index: 2, count: 5 }.to_string(), "2/5");
        let e = "4/4".parse::<Shard>().unwrap_err();
        assert!(e.contains("K must be below N (0/4 .. 3/4)"), "{e}");
        let e = "0/0".parse::<Shard>().unwrap_err();
        assert!(e.contains("at least 1"), "{e}");
        for bad in ["", "3", "a/4", "1/b", "-1/4", "1/4/2", "1..4"] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains("is not a shard K/N"), "{bad}: {e}");
        }
    }

    #[test]
    fn seeds_are_written_as_ranges_that_read_back() {
        assert_eq!(format_seeds(&(1..9).collect::<Vec<_>>()), "1..9");
        assert_eq!(format_seeds(&[0, 1, 2, 3, 7, 10, 11]), "0..4,7,10..12");
        assert_eq!(format_seeds(&[5, 1, 2]), "5,1..3");
        assert_eq!(format_seeds(&[]), "");
        assert_eq!(
            format_seeds(&[u64::MAX - 1, u64::MAX]),
            format!("{}..{},{}", u64::MAX - 1, u64::MAX, u64::MAX)
        );
        for seeds in [
            vec![3],
            vec![9, 3, 40, 41, 7],
            (0..500).collect(),
            vec![u64::MAX - 2, u64::MAX - 1, u64::MAX],
        ] {
            assert_eq!(parse_seeds(&format_seeds(&seeds)), Ok(seeds.clone()));
        }
    }
}
