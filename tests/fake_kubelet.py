"""A fake kubelet: the real pod-resources proto (exporter/kubernetes/api.proto) served by grpcio on a
unix socket in a temporary folder, answering what the test sets, late, or UNIMPLEMENTED; it can
allocate the devices the test sets (`allocatable`: [(resource name, [device ids])]), or, as a kubelet
before 1.23, not say."""

import time
from concurrent import futures

import grpc

from exporter.kubernetes import api_pb2, api_pb2_grpc


def pod(namespace, name, containers):
    """`containers`: {container: [(resource name, [device ids])]}."""
    return api_pb2.PodResources(namespace=namespace, name=name, containers=[
        api_pb2.ContainerResources(name=c, devices=[api_pb2.ContainerDevices(resource_name=r, device_ids=ids)
                                                    for r, ids in devices])
        for c, devices in containers.items()])


def sharing(whole_gpu_uuid, mig_uuid):
    """Two pods time-slicing one whole GPU (replicas ::0 and ::1) and a third in a MIG instance: the
    shapes the live test and the fleet attribute."""
    return [pod("llm", "vllm-a", {"server": [("nvidia.com/gpu", [f"{whole_gpu_uuid}::0"])]}),
            pod("llm", "vllm-b", {"server": [("nvidia.com/gpu", [f"{whole_gpu_uuid}::1"])]}),
            pod("team-b", "tgi", {"main": [("nvidia.com/mig-1g.10gb", [mig_uuid])]})]


class Kubelet(api_pb2_grpc.PodResourcesListerServicer):
    def __init__(self, socket_path, pods=(), delay=0.0, unimplemented=False, allocatable=None):
        self.socket_path, self.pods, self.delay, self.unimplemented = socket_path, list(pods), delay, unimplemented
        self.allocatable = allocatable
        self.calls = 0
        self.server = None

    def List(self, request, context):  # noqa: N802 - the proto's name
        self.calls += 1
        if self.unimplemented:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "List is not served here")
        time.sleep(self.delay)
        return api_pb2.ListPodResourcesResponse(pod_resources=self.pods)

    def GetAllocatableResources(self, request, context):  # noqa: N802 - the proto's name
        if self.allocatable is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "GetAllocatableResources is not served here")
        return api_pb2.AllocatableResourcesResponse(devices=[
            api_pb2.ContainerDevices(resource_name=r, device_ids=ids) for r, ids in self.allocatable])

    def start(self):
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        api_pb2_grpc.add_PodResourcesListerServicer_to_server(self, self.server)
        self.server.add_insecure_port(f"unix://{self.socket_path}")
        self.server.start()
        return self

    def stop(self):
        """As a kubelet that exits: the server goes, and its socket with it."""
        if self.server is not None:
            self.server.stop(grace=None).wait()
            self.server = None
