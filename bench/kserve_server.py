"""Benchmark baseline only: the KServe Python model server with an ONNX Runtime
predictor on the same ONNX file (`npm run bench -- serve`). Not product code."""
import sys

import numpy as np
import onnxruntime as ort
from kserve import Model, ModelServer
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse


class OnnxModel(Model):
    def __init__(self, name: str, path: str):
        super().__init__(name)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.ready = True

    async def predict(self, payload: InferRequest, headers=None, response_headers=None):
        feeds = {i.name: i.as_numpy().astype(np.float32) for i in payload.inputs}
        (probs,) = self.sess.run(None, feeds)
        out = InferOutput(name="probabilities", shape=list(probs.shape), datatype="FP32")
        out.set_data_from_numpy(probs)
        return InferResponse(model_name=self.name, infer_outputs=[out], response_id=payload.id)


if __name__ == "__main__":
    model = OnnxModel("example_multimodal", sys.argv[1])
    ModelServer(http_port=int(sys.argv[2]), grpc_port=int(sys.argv[3]), workers=1, enable_grpc=False).start([model])
