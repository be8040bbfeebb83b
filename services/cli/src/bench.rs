//! What `rollcall bench …` and `rollcall notify bench` measure on the operator's machine (a
//! product feature, through the libraries' public APIs only): the gallery against exact brute
//! force ([`gallery`], on [`synth`]etic templates), the ledger's check-in throughput
//! ([`ledger`]) and the notification dispatcher ([`notify`], to the reference
//! [`crate::receiver`]).

pub mod gallery;
pub mod ledger;
pub mod notify;
pub mod synth;
