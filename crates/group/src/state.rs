//! The states of a classic group and the transitions Kafka allows between them.

/// State of a classic group, as Kafka names it in DescribeGroups and ListGroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members; the group may still own committed offsets.
    Empty,
    /// A rebalance started: members must rejoin before the join phase completes.
    PreparingRebalance,
    /// Join phase done; waiting for the leader's assignment (SyncGroup).
    CompletingRebalance,
    /// Assignment delivered; members heartbeat.
    Stable,
    /// Removed (deleted, or being deleted); kept only while a tombstone is in flight.
    Dead,
}

impl GroupState {
    /// The name Kafka uses on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
            Self::Dead => "Dead",
        }
    }

    /// States from which Kafka allows a transition into `self`. Used to
    /// decide whether a rebalance may start (`canRebalance`) and to catch
    /// state-machine bugs.
    pub(crate) fn valid_previous(self) -> &'static [GroupState] {
        match self {
            Self::Empty => &[Self::PreparingRebalance],
            Self::PreparingRebalance => &[Self::Stable, Self::CompletingRebalance, Self::Empty],
            Self::CompletingRebalance => &[Self::PreparingRebalance],
            Self::Stable => &[Self::CompletingRebalance],
            Self::Dead => &[
                Self::Stable,
                Self::PreparingRebalance,
                Self::CompletingRebalance,
                Self::Empty,
                Self::Dead,
            ],
        }
    }
}

impl std::fmt::Display for GroupState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
