"""Test-bed plugins for the OpenStack stack of scripts/services/openstack.sh.

Installed by that script into Debian's /usr/bin/python3 site directory (with the
rosca_os_testbed-0.1.dist-info beside it, whose entry_points.txt registers the ML2
mechanism driver). Nothing here is used by the Rust project itself.
"""
