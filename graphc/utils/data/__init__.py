"""graphc.utils.data, shaped like torch.utils.data: datasets, samplers, collation and a
DataLoader whose worker processes send numpy arrays (never graphc Tensors) back to the parent."""
from .dataset import Dataset, TensorDataset, Subset, ConcatDataset, random_split  # noqa: F401
from .sampler import (Sampler, SequentialSampler, RandomSampler, SubsetRandomSampler,  # noqa: F401
                      BatchSampler)
from .collate import default_collate, default_convert  # noqa: F401
from .worker import WorkerInfo, get_worker_info  # noqa: F401
from .dataloader import DataLoader  # noqa: F401

__all__ = ["Dataset", "TensorDataset", "Subset", "ConcatDataset", "random_split", "Sampler",
           "SequentialSampler", "RandomSampler", "SubsetRandomSampler", "BatchSampler",
           "default_collate", "default_convert", "WorkerInfo", "get_worker_info", "DataLoader"]
