//! Directory listings: open (the children listed once per handle), readdir and readdirplus
//! (counting the lookups readdirplus hands the kernel), release.

use super::*;

impl Core {
    /// Opens a directory; returns the handle and whether the kernel may cache its listing.
    pub(crate) fn opendir(&self, ino: u64) -> R<(u64, bool)> {
        let node = self.entered(self.node(ino)?)?;
        let (children, cacheable) = match &node.kind {
            NodeKind::AllRoot => {
                let catalog = self.catalog.as_ref().ok_or(Fault::Io)?;
                let mut wares = catalog.wares();
                wares.sort_by_key(|w| w.to_string());
                wares.dedup();
                let mut c = vec![Child::Names];
                c.extend(wares.into_iter().map(Child::Ware));
                (c, false)
            }
            NodeKind::NamesDir => {
                let catalog = self.catalog.as_ref().ok_or(Fault::Io)?;
                let mut names = catalog.names();
                names.sort_by(|a, b| a.0.cmp(&b.0));
                names.dedup_by(|a, b| a.0 == b.0);
                (
                    names
                        .into_iter()
                        .map(|(n, id)| Child::Name(n, id))
                        .collect(),
                    false,
                )
            }
            NodeKind::NameLink(_) => return Err(Fault::NotDir),
            NodeKind::Listed { .. } => return Err(Fault::Io),
            NodeKind::Ware { ware, entry, .. } => {
                if entry.kind != Kind::Dir {
                    return Err(Fault::NotDir);
                }
                let entries = if ware.foreign {
                    self.foreign().ok_or(Fault::Io)?.list(entry)
                } else {
                    self.list(ware, entry)
                };
                let entries = entries.map_err(|e| {
                    ware_fault(&ware.id, &self.path(&node), "listing the directory", &e)
                })?;
                (
                    entries
                        .into_iter()
                        .map(|e| Child::Entry(Box::new(e)))
                        .collect(),
                    true,
                )
            }
        };
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let listing = Listing {
            parent: node.parent,
            children,
        };
        self.handles
            .lock()
            .insert(fh, Handle::Dir(Arc::new(listing)));
        Ok((fh, cacheable))
    }

    /// Up to `max` items of an open directory from `offset` (0 is `.`, 1 is `..`, then the
    /// children in name order); with `plus`, each with its attributes.
    pub(crate) fn readdir(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
        plus: bool,
        max: usize,
    ) -> R<Vec<DirItem>> {
        let listing = match self.handles.lock().get(&fh) {
            Some(Handle::Dir(l)) => l.clone(),
            _ => return Err(Fault::BadHandle),
        };
        let dir = self.node(ino)?;
        let mut out = Vec::new();
        let total = listing.children.len() as u64 + 2;
        let mut i = offset;
        while i < total && out.len() < max {
            let item = match i {
                0 | 1 => {
                    let (ino, name) = if i == 0 {
                        (dir.ino, b".".to_vec())
                    } else {
                        (listing.parent, b"..".to_vec())
                    };
                    let node = self.node(ino)?;
                    Some((node, name))
                }
                _ => {
                    let child = &listing.children[(i - 2) as usize];
                    match child {
                        Child::Entry(e) => {
                            let NodeKind::Ware { ware, .. } = &dir.kind else {
                                return Err(Fault::Io);
                            };
                            let name = e.name.to_vec();
                            Some((self.intern(dir.ino, ware, (**e).clone()), name))
                        }
                        Child::Names => Some((self.node(ROOT_INO + 1)?, NAMES.to_vec())),
                        Child::Name(n, id) => {
                            Some((self.name_link(n, *id), n.clone().into_bytes()))
                        }
                        // A listed ware whose root cannot be read is left out of the listing.
                        Child::Ware(id) => self
                            .top_ware(id)
                            .ok()
                            .map(|n| (n, id.to_string().into_bytes())),
                    }
                }
            };
            if let Some((node, name)) = item {
                let attr = if plus { Some(self.attr(&node)?) } else { None };
                // The kernel counts a lookup for each readdirplus entry but `.` and `..`
                // (the adapter forgets the ones that did not fit in its reply).
                if plus && i >= 2 {
                    self.inodes.write().looked_up(&node);
                }
                let kind = match &node.kind {
                    NodeKind::AllRoot | NodeKind::NamesDir | NodeKind::Listed { .. } => Kind::Dir,
                    NodeKind::NameLink(_) => Kind::Symlink,
                    NodeKind::Ware { entry, .. } => entry.kind,
                };
                out.push(DirItem {
                    ino: node.ino,
                    next: i + 1,
                    kind,
                    name,
                    attr,
                });
            }
            i += 1;
        }
        Ok(out)
    }

    pub(crate) fn releasedir(&self, fh: u64) {
        self.handles.lock().remove(&fh);
    }
}
