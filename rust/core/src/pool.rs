//! A fork-safe parallel map.
//!
//! Rayon's worker threads do not survive `fork()`: a child process (a PyTorch
//! DataLoader worker, say) that touched a pool created by its parent would wait
//! forever for threads that do not exist. Each pool remembers the process that
//! built it; in any other process we run sequentially, as Hugging Face
//! `tokenizers` does after a fork. No lock is taken on that path, so a lock held
//! by a parent thread at the moment of the fork cannot deadlock the child.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use rayon::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};

static OWNER_PID: AtomicU32 = AtomicU32::new(0);
static POOLS: OnceLock<Mutex<Vec<(usize, &'static ThreadPool)>>> = OnceLock::new();

/// Threads used when the caller does not say: `FASTBERT_NUM_THREADS`, else all cores.
pub fn default_threads() -> usize {
    std::env::var("FASTBERT_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Record this process as the owner of the pools (called when the extension loads),
/// so that a fork is recognised even if the parent never used a pool.
pub fn claim_owner() {
    let _ = OWNER_PID.compare_exchange(0, std::process::id(), Ordering::AcqRel, Ordering::Acquire);
}

/// True in a process forked from the one that created the pools.
pub fn is_forked_child() -> bool {
    let owner = OWNER_PID.load(Ordering::Acquire);
    owner != 0 && owner != std::process::id()
}

fn pool(threads: usize) -> Option<&'static ThreadPool> {
    let pid = std::process::id();
    match OWNER_PID.compare_exchange(0, pid, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {}
        Err(owner) if owner == pid => {}
        Err(_) => return None,
    }
    let pools = POOLS.get_or_init(|| Mutex::new(Vec::new()));
    let mut pools = pools.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&(_, p)) = pools.iter().find(|(n, _)| *n == threads) {
        return Some(p);
    }
    let built = ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("fastbert-{i}"))
        .build()
        .ok()?;
    // Pools live for the whole process: at most one per distinct thread count.
    let leaked: &'static ThreadPool = Box::leak(Box::new(built));
    pools.push((threads, leaked));
    Some(leaked)
}

/// `items.map(f)` on `threads` threads (default: [`default_threads`]), in order.
pub fn map<T, R, F>(items: &[T], threads: Option<usize>, f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync + Send,
{
    let threads = threads.unwrap_or_else(default_threads).max(1);
    if threads == 1 || items.len() < 2 || is_forked_child() {
        return items.iter().map(f).collect();
    }
    match pool(threads) {
        Some(p) => p.install(|| items.par_iter().with_min_len(8).map(f).collect()),
        None => items.iter().map(f).collect(),
    }
}

/// Run `f` over disjoint mutable chunks of `data` (`chunk` elements each) in parallel.
pub fn for_each_chunk<T, F>(data: &mut [T], chunk: usize, threads: Option<usize>, f: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Sync + Send,
{
    let threads = threads.unwrap_or_else(default_threads).max(1);
    let chunk = chunk.max(1);
    if threads == 1 || data.len() <= chunk || is_forked_child() {
        data.chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
        return;
    }
    match pool(threads) {
        Some(p) => p.install(|| {
            data.par_chunks_mut(chunk)
                .enumerate()
                .for_each(|(i, c)| f(i, c))
        }),
        None => data
            .chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| f(i, c)),
    }
}
