//! Any bytes given as a node (from a remote, or a damaged disk) decode to a valid node or to an
//! error: never a panic, never a node that fails validation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ware_store::NodeId;
use ware_store::node::{DirNode, FileNode, RootNode};

fuzz_target!(|data: &[u8]| {
    let id = NodeId::of(data);
    if let Ok(root) = RootNode::decode(&id, data) {
        assert!(root.root.validate(true).is_ok());
    }
    if let Ok(dir) = DirNode::decode(&id, data) {
        assert!(dir.entries.iter().all(|e| e.validate(false).is_ok()));
    }
    let _ = FileNode::decode(&id, data);
});
