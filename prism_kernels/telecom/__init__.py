"""Telecom traffic engineering on real topologies.

Modules, one idea each:

- :mod:`~prism_kernels.telecom.topology`: the topology model (nodes, links with capacity,
  latency, IGP cost and SRLG groups), built from the original API's ``NetworkTopology``, from
  NetworkX graphs and from the shipped Abilene and GEANT backbones; demands;
- :mod:`~prism_kernels.telecom.paths`: shortest distances (one source, many sources, all
  pairs) on the array backend, k-shortest paths;
- :mod:`~prism_kernels.telecom.routing`: IGP routing with ECMP splits as a demand x arc routing
  matrix, so link loads for many traffic matrices are one product;
- :mod:`~prism_kernels.telecom.te`: traffic engineering (``minimize_latency``,
  ``maximize_throughput``, ``balance_load``) as multi-commodity flow LPs through HiGHS;
- :mod:`~prism_kernels.telecom.failures`: N-1 (links, nodes, SRLGs) and given scenarios,
  re-routed as one batch;
- :mod:`~prism_kernels.telecom.flow`: maximum flow and minimum cut;
- :mod:`~prism_kernels.telecom.metrics`: degree, betweenness, articulation points, bridges,
  connectivity, diameter;
- :mod:`~prism_kernels.telecom.congestion`: utilisation, hot spots and recommendations computed
  from the model;
- :mod:`~prism_kernels.telecom.traffic`: seeded gravity traffic matrices with daily seasonality;
- :mod:`~prism_kernels.telecom.service`: :class:`TelecomService`, the managed network.

Units: bandwidths, capacities and demand volumes share one unit (Gbps in the shipped
backbones); latencies are milliseconds; utilisations are fractions of capacity.
"""
