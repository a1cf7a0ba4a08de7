//! Whether the heap gets transparent huge pages. A worker's leg state (records, sockets,
//! socket buffers) spans about 700 MB at 100 000 calls; on 4 KiB pages a frame for a leg not
//! touched lately misses the TLB on each of them as well as the cache (a page walk, which
//! costs more again under a hypervisor). On 2 MiB pages the worker bench's cost per packet
//! with traffic spread over 100 000 legs is about a quarter lower.
//!
//! glibc's allocator asks for huge pages (`madvise`) when started with
//! `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`; the packaged systemd unit sets it. With the
//! kernel's THP mode `always` nothing is needed; with `never` nothing helps. Asking is not
//! getting: a kernel without free 2 MiB pages gives 4 KiB ones (seen on a long-running test
//! machine: heap areas flagged for huge pages, none granted).

/// What the heap will be paged with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeapPaging {
    /// THP `always`, or `madvise` with glibc asked to advise.
    Huge,
    /// THP `madvise` and glibc not asked: 4 KiB pages.
    NotAsked,
    /// THP `never`: 4 KiB pages whatever the process does.
    Never,
    /// No THP setting readable (another kernel, a container without /sys).
    Unknown,
}

/// From the kernel's THP mode (the text of `/sys/kernel/mm/transparent_hugepage/enabled`,
/// the mode in brackets) and `GLIBC_TUNABLES`.
pub fn paging(thp_enabled: Option<&str>, tunables: Option<&str>) -> HeapPaging {
    let Some(mode) = thp_enabled.and_then(|t| {
        let start = t.find('[')? + 1;
        let end = start + t[start..].find(']')?;
        Some(&t[start..end])
    }) else {
        return HeapPaging::Unknown;
    };
    // hugetlb=1: THP through madvise; 2: hugetlbfs pages (reserved by the operator).
    let asked = tunables.is_some_and(|t| {
        t.split(':').any(|kv| {
            matches!(
                kv.trim(),
                "glibc.malloc.hugetlb=1" | "glibc.malloc.hugetlb=2"
            )
        })
    });
    match mode {
        "always" => HeapPaging::Huge,
        "madvise" if asked => HeapPaging::Huge,
        "madvise" => HeapPaging::NotAsked,
        "never" => HeapPaging::Never,
        _ => HeapPaging::Unknown,
    }
}

/// Logs how the heap is paged, with what to do when it is not on huge pages.
pub fn log() {
    let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").ok();
    let tunables = std::env::var("GLIBC_TUNABLES").ok();
    match paging(thp.as_deref(), tunables.as_deref()) {
        // The settings say what is asked, not what the kernel grants: without free 2 MiB
        // pages (fragmented memory) it falls back to 4 KiB ones, silently.
        HeapPaging::Huge => tracing::info!(
            "heap asks for transparent huge pages (AnonHugePages in /proc/self/smaps_rollup \
             shows how much the kernel granted)"
        ),
        HeapPaging::NotAsked => tracing::warn!(
            thp = "madvise",
            "heap on 4 KiB pages: with many legs, cold legs cost TLB misses; start imsagw with \
             GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (the packaged systemd unit does)"
        ),
        HeapPaging::Never => tracing::warn!(
            thp = "never",
            "heap on 4 KiB pages: transparent huge pages are off in the kernel \
             (/sys/kernel/mm/transparent_hugepage/enabled)"
        ),
        HeapPaging::Unknown => tracing::info!("heap paging unknown (no THP setting readable)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_in_brackets_and_the_tunable_decide() {
        let madvise = Some("always [madvise] never\n");
        assert_eq!(paging(madvise, None), HeapPaging::NotAsked);
        assert_eq!(
            paging(madvise, Some("glibc.malloc.hugetlb=1")),
            HeapPaging::Huge
        );
        assert_eq!(
            paging(
                madvise,
                Some("glibc.malloc.arena_max=2:glibc.malloc.hugetlb=2")
            ),
            HeapPaging::Huge
        );
        assert_eq!(
            paging(madvise, Some("glibc.malloc.hugetlb=0")),
            HeapPaging::NotAsked
        );
        assert_eq!(
            paging(Some("[always] madvise never"), None),
            HeapPaging::Huge
        );
        assert_eq!(
            paging(
                Some("always madvise [never]"),
                Some("glibc.malloc.hugetlb=1")
            ),
            HeapPaging::Never
        );
        assert_eq!(paging(None, None), HeapPaging::Unknown);
        assert_eq!(paging(Some("garbage"), None), HeapPaging::Unknown);
    }
}
