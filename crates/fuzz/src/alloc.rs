//! How many bytes a target holds at once, counted per thread by the `allocation-counter`
//! crate's global allocator, so that a target can be checked never to allocate in
//! proportion to a length field rather than to its input. Counting per thread lets the
//! replay tests run in parallel, each against its own budget.

/// Runs `f` and returns its result with the most bytes this thread held at once during
/// it, beyond what it held before.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let mut out = None;
    let info = allocation_counter::measure(|| out = Some(f()));
    let peak = usize::try_from(info.bytes_max).unwrap_or(usize::MAX);
    match out {
        Some(r) => (r, peak),
        // measure() runs its closure exactly once.
        None => unreachable!("allocation_counter::measure did not run the target"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_what_is_held() {
        let (v, peak) = super::measure(|| vec![0u8; 1 << 20]);
        assert!(peak >= 1 << 20);
        drop(v);
        let ((), peak) = super::measure(|| {
            for _ in 0..4 {
                drop(std::hint::black_box(vec![0u8; 1000]));
            }
        });
        assert!((1000..2000).contains(&peak), "{peak}");
    }

    #[test]
    fn other_threads_are_not_counted() {
        let ((), peak) = super::measure(|| {
            std::thread::scope(|s| {
                s.spawn(|| drop(std::hint::black_box(vec![0u8; 1 << 20])));
            });
        });
        assert!(peak < 1 << 20, "{peak}");
    }
}
