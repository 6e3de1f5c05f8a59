//! A byte budget for file contents held in memory, shared by the transfers of one executor
//! (deploy's phases, sync's transfers): however many requests are in flight, the bytes read
//! into memory at once stay under the budget.

use tokio::sync::{Semaphore, SemaphorePermit};

/// The budget is counted in KiB permits.
const PERMIT_BYTES: u64 = 1024;

#[derive(Debug)]
pub(crate) struct MemoryBudget {
    permits: Semaphore,
    total: u32,
}

impl MemoryBudget {
    pub(crate) fn new(bytes: u64) -> MemoryBudget {
        let total = (bytes / PERMIT_BYTES).clamp(1, u64::from(u32::MAX)) as u32;
        MemoryBudget {
            permits: Semaphore::new(total.min(Semaphore::MAX_PERMITS as u32) as usize),
            total,
        }
    }

    /// Waits until `bytes` fit, and holds them until the permit drops. A request for more
    /// than the whole budget takes the whole budget, so a large file waits for the others
    /// instead of forever.
    pub(crate) async fn reserve(&self, bytes: u64) -> SemaphorePermit<'_> {
        let wanted = bytes
            .div_ceil(PERMIT_BYTES)
            .max(1)
            .min(u64::from(self.total)) as u32;
        self.permits
            .acquire_many(wanted)
            .await
            .expect("the budget's semaphore is never closed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_beyond_the_budget_wait_for_a_release() {
        let budget = MemoryBudget::new(10 * 1024);
        let first = budget.reserve(8 * 1024).await;
        // A file larger than the whole budget still gets it, once the budget is free.
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            budget.reserve(1 << 30),
        )
        .await;
        assert!(waiting.is_err(), "reserved more than the budget holds");
        drop(first);
        let whole = budget.reserve(1 << 30).await;
        assert_eq!(budget.permits.available_permits(), 0);
        drop(whole);
        let small = budget.reserve(1).await;
        assert_eq!(budget.permits.available_permits(), 9);
        drop(small);
        let _over_a_kib = budget.reserve(1025).await;
        assert_eq!(budget.permits.available_permits(), 8);
    }
}
