"""What the balancer of `tritonbuild serve --replicas` tells its clients, besides Triton's own protocol.

Every answer through it carries REPLICAS_HEADER: the replicas' own host:port, for the protocol of the port
asked, ready or not. tritonbench reads each replica's statistics there (a balancer's own would be one
replica's, a different one at each call). The balancer (builder/serving/) writes it; the client reads it.
"""

REPLICAS_HEADER = "tritonbuild-replicas"
