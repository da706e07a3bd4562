//! The top of a mount of many wares (`ware mount --all`, `ware mount URL`): each ware's root
//! inode, made on first sight, and the links of `names/`. A ware its catalog lists but
//! the store does not hold whole ([`crate::Catalog::unfetched`]) shows as a bare directory
//! until a program looks inside, so listing and `stat` of the top fetch nothing.

use super::*;

impl Core {
    /// The inode of a ware at the top, listed or typed, made on first sight: a bare directory
    /// while the catalog says its root is not at hand ([`Catalog::unfetched`]), else its root
    /// (which must be readable).
    pub(super) fn top_ware(&self, id: &WareId) -> R<Arc<Node>> {
        let key = (ROOT_INO, id.to_string().into_bytes());
        if let Some(node) = self.top_node(&key) {
            return Ok(node);
        }
        let Some(at) = self.catalog.as_ref().and_then(|c| c.unfetched(id)) else {
            return self.tree_root(&id.0, false);
        };
        let mut inodes = self.inodes.write();
        if let Some(node) = inodes.by_name.get(&key).and_then(|&i| inodes.get(i)) {
            return Ok(node);
        }
        let node = inodes.push(ROOT_INO, key.1.clone(), NodeKind::Listed { id: *id, at });
        inodes.by_name.insert(key, node.ino);
        Ok(node)
    }

    /// `node`, ready to be looked into: a listed ware's root is read now and takes the place of
    /// its bare directory, under the same inode number (the kernel holds it).
    pub(super) fn entered(&self, node: Arc<Node>) -> R<Arc<Node>> {
        let NodeKind::Listed { id, .. } = &node.kind else {
            return Ok(node);
        };
        let root = self.read_root(&id.0, false)?;
        let mut inodes = self.inodes.write();
        if let Some(now) = inodes.get(node.ino)
            && !matches!(now.kind, NodeKind::Listed { .. })
        {
            return Ok(now);
        }
        let ware = Arc::new(WareCtx {
            id: id.0,
            foreign: false,
            root_ino: node.ino,
            root: root.clone(),
            links: Mutex::new(None),
        });
        let entered = Arc::new(Node {
            ino: node.ino,
            parent: node.parent,
            name: node.name.clone(),
            kind: ware_kind(ware, root),
        });
        inodes.replace(&entered);
        Ok(entered)
    }

    fn top_node(&self, key: &(u64, Vec<u8>)) -> Option<Arc<Node>> {
        let inodes = self.inodes.read();
        inodes.by_name.get(key).and_then(|&i| inodes.get(i))
    }

    /// The foreign tree a source can show, if any.
    pub(super) fn foreign(&self) -> Option<&dyn ForeignTree> {
        self.src.foreign()
    }

    /// The root entry of a ware (or, with `foreign`, of a foreign tree such as an IPFS UnixFS
    /// CID): not found is ENOENT, anything else EIO (logged).
    fn read_root(&self, id: &Cid, foreign: bool) -> R<Entry> {
        let read = if foreign {
            match self.foreign() {
                Some(tree) => tree.root(id),
                None => return Err(Fault::NoEntry),
            }
        } else {
            Reader::new(&*self.src).root(&WareId::from_cid(*id).map_err(|_| Fault::NoEntry)?)
        };
        let root = match read {
            Ok(r) => r,
            Err(e) if e.is_not_found() => {
                tracing::debug!(ware = %id, "lookup: {e}");
                return Err(Fault::NoEntry);
            }
            Err(e) => return Err(ware_fault(id, "/", "root node", &e)),
        };
        if let Some(log) = &self.reads
            && !foreign
        {
            log.read(id, id);
        }
        Ok(root)
    }

    /// The root inode of a ware (or, with `foreign`, of a foreign tree) at the top of the
    /// mount, made on first lookup: its root must be readable.
    pub(super) fn tree_root(&self, id: &Cid, foreign: bool) -> R<Arc<Node>> {
        let name = id.to_string().into_bytes();
        let key = (ROOT_INO, name.clone());
        if let Some(node) = self.top_node(&key) {
            return Ok(node);
        }
        let root = self.read_root(id, foreign)?;
        let mut inodes = self.inodes.write();
        if let Some(node) = inodes.by_name.get(&key).and_then(|&i| inodes.get(i)) {
            return Ok(node);
        }
        let ino = inodes.last + 1;
        let ware = Arc::new(WareCtx {
            id: *id,
            foreign,
            root_ino: ino,
            root: root.clone(),
            links: Mutex::new(None),
        });
        let node = inodes.push(ROOT_INO, name, ware_kind(ware, root));
        inodes.by_name.insert(key, node.ino);
        Ok(node)
    }

    pub(super) fn name_link(&self, name: &str, target: WareId) -> Arc<Node> {
        let names_ino = ROOT_INO + 1;
        // Names hold no NUL, so name NUL target is a key per (name, target).
        let key = (names_ino, format!("{name}\0{target}").into_bytes());
        if let Some(node) = {
            let inodes = self.inodes.read();
            inodes.by_name.get(&key).and_then(|&i| inodes.get(i))
        } {
            return node;
        }
        let mut inodes = self.inodes.write();
        if let Some(node) = inodes.by_name.get(&key).and_then(|&i| inodes.get(i)) {
            return node;
        }
        let node = inodes.push(
            names_ino,
            name.as_bytes().to_vec(),
            NodeKind::NameLink(target),
        );
        inodes.by_name.insert(key, node.ino);
        node
    }

    pub(super) fn link_target(target: &WareId) -> Vec<u8> {
        format!("../{target}").into_bytes()
    }
}
