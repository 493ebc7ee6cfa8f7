//! Signatures: eps along K directions for many images, how they were measured, and files.

pub mod boundary;
mod extract;
pub mod flip_rate;
pub mod label;
mod lockstep;
mod predict;
mod search;
mod set;
mod vote;

pub use extract::{extract, in_blocks, signature_provenance, signature_via_oracle, ExtractConfig, Method, Shard};
pub use lockstep::{lockstep_signatures, Outputs};
pub use predict::EpsPredictor;
pub use search::{run_search, Answer, EpsOutcome, EpsSearch, OwnedPrior, Prior, SearchConfig, ANCHOR_WALK_STEPS};
pub use set::SignatureSet;
pub use vote::MajorityVote;
