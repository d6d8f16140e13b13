"""The pinned pool's NumPy views without a GPU: a plain (malloc) pool has the same bookkeeping."""

import gc

import numpy as np
import pytest

import kiln


@pytest.fixture
def pool():
    return kiln.PinnedPool(plain=True)


def test_a_pinned_array_is_a_view_of_the_block(pool):
    a = pool.empty((4, 5), np.float32)
    assert a.shape == (4, 5) and a.dtype == np.float32 and a.flags.writeable and a.flags.c_contiguous
    block = a.base
    while not isinstance(block, kiln._native.PinnedBlock):
        block = block.obj if isinstance(block, memoryview) else block.base
    assert a.__array_interface__["data"][0] == block.address
    a[...] = 7
    assert bytes(memoryview(block)[:4]) == np.float32(7).tobytes()  # the same bytes, no copy
    assert pool.stats()["in_use"] >= a.nbytes


def test_blocks_return_to_the_pool_with_their_last_view(pool):
    a = pool.empty(1000, np.float64)
    view = a[10:20]
    in_use = pool.stats()["in_use"]
    del a
    gc.collect()
    assert pool.stats()["in_use"] == in_use  # the view keeps the block
    view[...] = 1
    del view
    gc.collect()
    assert pool.stats()["in_use"] == 0
    b = pool.empty(1000, np.float64)  # same size class: a hit, not a new allocation
    assert pool.stats()["hits"] >= 1
    del b


def test_pinned_array_copies_and_keeps_the_values(pool):
    source = np.arange(12, dtype=np.int32).reshape(3, 4)
    copy = kiln.pinned_array(source, pool=pool)
    assert np.array_equal(copy, source) and copy.dtype == np.int32
    assert not np.shares_memory(copy, source)


def test_zero_size_and_bad_shapes(pool):
    assert pool.empty(0, np.float32).size == 0
    with pytest.raises(ValueError, match="negative"):
        pool.empty((2, -1), np.float32)


def test_the_pool_outlives_nothing(pool):
    a = pool.empty(64, np.uint8)
    del pool
    gc.collect()
    a[...] = 3  # a block stays valid after its pool is gone
    assert a.sum() == 64 * 3
