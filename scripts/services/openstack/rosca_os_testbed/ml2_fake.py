"""ML2 mechanism driver "rosca_fake": binds every port, has no data plane.

Neutron here runs with no L2/DHCP/L3 agents (they would need root network plumbing). With
no mechanism driver able to bind, a port bound to a compute host ends as binding_failed and
nova puts the server in ERROR. This driver accepts every segment (flat, vlan, vxlan) for
every host and vnic type and reports vif_type "ovs" with empty vif_details; nova's
fake.FakeDriver plugs nothing, so the server gets ACTIVE with its fixed IP, and floating IPs
can be associated with the port. No packet ever flows.

Registered by ../rosca_os_testbed-0.1.dist-info/entry_points.txt in the
neutron.ml2.mechanism_drivers namespace; ml2_conf.ini: mechanism_drivers = rosca_fake.
"""
from neutron_lib.api.definitions import portbindings
from neutron_lib import constants
from neutron_lib.plugins.ml2 import api
from oslo_log import log as logging

LOG = logging.getLogger(__name__)


class RoscaFakeMechanismDriver(api.MechanismDriver):

    def initialize(self):
        LOG.info("rosca_fake mechanism driver: binding every port (no data plane)")

    @property
    def connectivity(self):
        return portbindings.CONNECTIVITY_L2

    def bind_port(self, context):
        for segment in context.segments_to_bind:
            context.set_binding(segment[api.ID], portbindings.VIF_TYPE_OVS, {},
                                status=constants.PORT_STATUS_ACTIVE)
            LOG.debug("rosca_fake bound port %s on host %s to segment %s (%s)",
                      context.current["id"], context.host, segment[api.ID],
                      segment[api.NETWORK_TYPE])
            return

    def check_vlan_transparency(self, context):
        return True
