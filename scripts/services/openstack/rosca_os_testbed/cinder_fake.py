"""Cinder volume driver with no backing storage, for the rosca OpenStack test bed.

Volumes, snapshots and attachments exist only in cinder's database: nothing is allocated,
exported or connected. initialize_connection returns driver_volume_type "fake"; nova's
fake.FakeDriver (compute_driver = fake.FakeDriver) records the attachment without looking at
it, so POST /servers/{id}/os-volume_attachments takes the volume to in-use and back.

Why not cinder.tests.fake_driver.FakeLoggingVolumeDriver (which python3-cinder ships)? It is
unit-test code built on the LVM driver (fake LVM executor, reports iSCSI) and imports
cinder.tests.unit; this class depends only on cinder.volume.driver.
cinder.conf: volume_driver = rosca_os_testbed.cinder_fake.RoscaFakeVolumeDriver
"""
from oslo_log import log as logging

from cinder.volume import driver

LOG = logging.getLogger(__name__)
CAPACITY_GB = 10000


class RoscaFakeVolumeDriver(driver.VolumeDriver):
    VERSION = "1.0.0"
    CI_WIKI_NAME = "rosca-testbed"

    def do_setup(self, context):
        LOG.info("rosca fake volume driver: no backing storage")

    def check_for_setup_error(self):
        pass

    # volumes and snapshots: nothing to allocate; returning None keeps cinder's model
    def create_volume(self, volume):
        LOG.info("create volume %s (%s GB)", volume.id, volume.size)

    def delete_volume(self, volume):
        LOG.info("delete volume %s", volume.id)

    def create_volume_from_snapshot(self, volume, snapshot):
        pass

    def create_cloned_volume(self, volume, src_vref):
        pass

    def extend_volume(self, volume, new_size):
        pass

    def create_snapshot(self, snapshot):
        pass

    def delete_snapshot(self, snapshot):
        pass

    def copy_image_to_volume(self, context, volume, image_service, image_id):
        pass

    def copy_volume_to_image(self, context, volume, image_service, image_meta):
        pass

    # exports and connections
    def ensure_export(self, context, volume):
        pass

    def create_export(self, context, volume, connector):
        pass

    def remove_export(self, context, volume):
        pass

    def validate_connector(self, connector):
        pass

    def initialize_connection(self, volume, connector):
        return {"driver_volume_type": "fake",
                "data": {"volume_id": volume.id, "access_mode": "rw", "discard": False}}

    def terminate_connection(self, volume, connector, **kwargs):
        pass

    def _update_volume_stats(self):
        name = self.configuration.safe_get("volume_backend_name") or "fake"
        self._stats = {
            "volume_backend_name": name,
            "vendor_name": "rosca",
            "driver_version": self.VERSION,
            "storage_protocol": "fake",
            "replication_enabled": False,
            "shared_targets": False,
            "pools": [{
                "pool_name": name,
                "total_capacity_gb": CAPACITY_GB,
                "free_capacity_gb": CAPACITY_GB,
                "reserved_percentage": 0,
                "thin_provisioning_support": True,
                "thick_provisioning_support": True,
                "max_over_subscription_ratio": 20.0,
                "multiattach": True,
                "QoS_support": False,
            }],
        }
