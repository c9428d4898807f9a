//! Latencies in log-linear buckets: the layout that the supervisor's
//! call metrics and a worker's [`StatsPage`](super::StatsPage) share, so
//! that their counts add up bucket by bucket.

/// log2 of the sub-buckets per power of two.
pub const SUB_BITS: u32 = 3;
/// Sub-buckets per power of two: a bucket is at most 1/8 of its lower
/// bound wide, so its midpoint is within 1/16 (6.25%) of any value in it.
pub const SUB: usize = 1 << SUB_BITS;
/// Values below `SUB` have a bucket each; above, each power of two up to
/// 2^63 has `SUB` buckets. Every `u64` has a bucket: nothing is clamped.
pub const BUCKETS: usize = SUB + (64 - SUB_BITS as usize) * SUB;

/// The bucket of a value: the value itself below `SUB`, then for a value
/// in `[2^e, 2^(e+1))` one of `SUB` equal slices of that range.
#[expect(
    clippy::cast_possible_truncation,
    reason = "the values cast are below 64"
)]
pub fn bucket(us: u64) -> usize {
    if us < SUB as u64 {
        return us as usize;
    }
    let shift = us.ilog2() - SUB_BITS;
    let slice = (us >> shift) as usize - SUB;
    (shift as usize + 1) * SUB + slice
}

/// The value that stands for a bucket's samples: its midpoint.
pub fn midpoint(index: usize) -> u64 {
    if index < SUB {
        return index as u64;
    }
    let shift = index / SUB - 1;
    let low = ((SUB + index % SUB) as u64) << shift;
    low + (1 << shift) / 2
}

/// The `percent` quantile of the samples in `counts`: the midpoint of the
/// bucket holding the `ceil(percent/100 · n)`-th smallest sample; `None`
/// without samples. Sums saturate: counts from a worker may be anything.
pub fn quantile(counts: &[u64; BUCKETS], percent: u64) -> Option<u64> {
    let total = counts
        .iter()
        .fold(0u64, |sum, count| sum.saturating_add(*count));
    let rank = (u128::from(total) * u128::from(percent)).div_ceil(100);
    // At most `total`, so it fits; at least 1, so 0 samples give `None`.
    let rank = u64::try_from(rank).unwrap_or(total).max(1);
    let mut seen = 0u64;
    for (index, count) in counts.iter().enumerate() {
        seen = seen.saturating_add(*count);
        if seen >= rank {
            return Some(midpoint(index));
        }
    }
    None
}
