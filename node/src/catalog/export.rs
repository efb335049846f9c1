//! The catalogue's content for a backup (`common::backup`): every tenant, database and
//! collection, one item each, in the catalogue's own (sorted) order.

use std::io;

use common::backup::BackupItem;
use common::catalog::DatabaseModel;

use super::state::CatalogState;

impl CatalogState {
    pub(super) fn export(
        &self,
        out: &mut dyn FnMut(BackupItem) -> io::Result<()>,
    ) -> io::Result<()> {
        for name in &self.tenants {
            out(BackupItem::Tenant { name: name.clone() })?;
        }
        for ((tenant, name), id) in &self.databases {
            out(BackupItem::Database(DatabaseModel {
                id: id.clone(),
                name: name.clone(),
                tenant: tenant.clone(),
            }))?;
        }
        for c in self.collections.values() {
            out(BackupItem::Collection(Box::new(c.clone())))?;
        }
        Ok(())
    }
}
