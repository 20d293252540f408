"""TensorDescriptor (TMA descriptors) for the stand-in: the torch references read `.base`."""


class TensorDescriptor:
    def __init__(self, base, shape, strides, block_shape):
        self.base, self.shape, self.strides, self.block_shape = base, shape, strides, block_shape

    @staticmethod
    def from_tensor(tensor, block_shape):
        return TensorDescriptor(tensor, list(tensor.shape), list(tensor.stride()), list(block_shape))
