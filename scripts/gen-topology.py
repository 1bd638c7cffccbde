#!/usr/bin/env python3
"""Generates a valid TOSCA 1.3 service template with N node templates, for benchmarks.

Usage: scripts/gen-topology.py N OUT

Shape (wide and deep):
  * blocks of 10 node templates: one tosca.nodes.Compute (host and os capability properties,
    scalar units) and 9 example.nodes.App (a SoftwareComponent) hosted on it, each depending on
    the previous one in its block: dependency chains of depth 9-10;
  * one shared example.nodes.App (`shared_registry`) that every chain head depends on (fan-in
    of N/10), hosted on the first Compute;
  * a custom data type whose properties carry constraints (in_range, valid_values, lengths,
    scalar-unit comparisons), used by every App;
  * get_input / get_property / concat / get_attribute in properties, interface inputs and
    outputs; inputs with defaults.
The output is deterministic for a given N.
"""
import sys

HEADER = """\
tosca_definitions_version: tosca_simple_yaml_1_3

description: Generated benchmark topology with {n} node templates.

metadata:
  template_name: bench-{n}
  template_author: scripts/gen-topology.py
  template_version: "1.0"

data_types:
  example.datatypes.Endpoint:
    derived_from: tosca.datatypes.Root
    properties:
      port:
        type: integer
        constraints:
          - in_range: [1, 65535]
      protocol:
        type: string
        default: https
        constraints:
          - valid_values: [http, https, tcp]
      path:
        type: string
        required: false
        constraints:
          - min_length: 1
          - max_length: 128
      timeout:
        type: scalar-unit.time
        default: 30 s
        constraints:
          - greater_or_equal: 1 s

node_types:
  example.nodes.App:
    derived_from: tosca.nodes.SoftwareComponent
    properties:
      endpoint:
        type: example.datatypes.Endpoint
      replicas:
        type: integer
        default: 1
        constraints:
          - greater_or_equal: 1
          - less_or_equal: 64
      label:
        type: string
        constraints:
          - max_length: 200
      memory:
        type: scalar-unit.size
        constraints:
          - less_than: 64 GB
      tier:
        type: string
        constraints:
          - valid_values: [front, middle, back]
    attributes:
      url:
        type: string

topology_template:
  inputs:
    app_port:
      type: integer
      default: 8080
      constraints:
        - in_range: [1024, 65535]
    prefix:
      type: string
      default: bench
    region:
      type: string
      default: eu-west
      constraints:
        - valid_values: [eu-west, eu-central, us-east]
    host_mem:
      type: scalar-unit.size
      default: 4 GB
    replicas:
      type: integer
      default: 2

  node_templates:
"""

TIERS = ["front", "middle", "back"]
OSES = [("ubuntu", "22.04"), ("debian", "12.0"), ("centos", "9.0"), ("rocky", "9.2")]


def compute(b):
    dist, ver = OSES[b % len(OSES)]
    cpus = 1 + b % 8
    return f"""\
    host_{b}:
      type: tosca.nodes.Compute
      metadata:
        region: eu-west
      capabilities:
        host:
          properties:
            num_cpus: {cpus}
            mem_size: {{ get_input: host_mem }}
            disk_size: {10 + b % 90} GiB
            cpu_frequency: 2.{b % 10} GHz
        os:
          properties:
            architecture: x86_64
            type: linux
            distribution: {dist}
            version: "{ver}"
"""


def app(name, host, dep, shared, k):
    reqs = [f"        - host: {host}"]
    if dep:
        reqs.append(f"        - dependency: {dep}")
    if shared:
        reqs.append(f"        - dependency: {shared}")
    reqs = "\n".join(reqs)
    return f"""\
    {name}:
      type: example.nodes.App
      properties:
        component_version: "1.{k % 10}.{k % 7}"
        label: {{ concat: [ {{ get_input: prefix }}, "-", {{ get_input: region }}, "-{name}" ] }}
        replicas: {{ get_input: replicas }}
        memory: {128 * (1 + k % 8)} MB
        tier: {TIERS[k % 3]}
        endpoint:
          port: {8000 + k % 1000}
          protocol: {"http" if k % 2 else "https"}
          path: /{name}
          timeout: {5 + k % 50} s
      requirements:
{reqs}
      interfaces:
        Standard:
          configure:
            inputs:
              host_address: {{ get_attribute: [ HOST, private_address ] }}
              port: {{ get_property: [ SELF, endpoint, port ] }}
              listen: {{ get_input: app_port }}
              url: {{ concat: [ "http://", {{ get_attribute: [ HOST, private_address ] }}, ":", {{ get_property: [ SELF, endpoint, port ] }} ] }}
"""


def generate(n):
    out = [HEADER.format(n=n)]
    count = 0
    b = 0
    shared = "shared_registry"
    while count < n:
        out.append(compute(b))
        count += 1
        if b == 0 and count < n:
            out.append(app(shared, "host_0", None, None, 0))
            count += 1
        prev = None
        for j in range(9):
            if count >= n:
                break
            name = f"app_{b}_{j}"
            out.append(app(name, f"host_{b}", prev, shared if j == 0 and b > 0 else None, b * 9 + j))
            prev = name
            count += 1
        b += 1
    out.append("\n  outputs:\n")
    for i in range(min(b, 10)):
        out.append(f"""\
    address_{i}:
      description: Address of host_{i}.
      value: {{ get_attribute: [ host_{i}, public_address ] }}
""")
    out.append(f"""\
    registry_url:
      value: {{ concat: [ "http://", {{ get_attribute: [ host_0, public_address ] }}, ":", {{ get_property: [ shared_registry, endpoint, port ] }} ] }}
""" if n > 1 else "")
    return "".join(out)


def main():
    if len(sys.argv) != 3:
        sys.stderr.write("usage: gen-topology.py N OUT\n")
        sys.exit(2)
    n = int(sys.argv[1])
    if n < 1:
        sys.stderr.write("N must be >= 1\n")
        sys.exit(2)
    text = generate(n)
    if sys.argv[2] == "-":
        sys.stdout.write(text)
    else:
        with open(sys.argv[2], "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
