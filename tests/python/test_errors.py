"""kiln's errors in Python: the classes, and explain()."""

import builtins

import pytest

import kiln


def test_explain_a_name():
    [e] = kiln.explain("CUDA_ERROR_ILLEGAL_ADDRESS")
    assert (e.domain, e.code, e.sticky) == ("driver", 700, True)
    assert e.meaning and e.hint
    assert "sticky:  yes" in str(e)


def test_explain_a_number_names_every_domain_that_has_it():
    found = kiln.explain(1)
    assert len({e.domain for e in found}) >= 3
    assert all(e.code == 1 for e in found)


def test_explain_domain_and_number():
    [e] = kiln.explain("nvrtc:6")
    assert e.name == "NVRTC_ERROR_COMPILATION" and not e.sticky


def test_explain_an_unknown_code():
    with pytest.raises(KeyError, match="NOT_AN_ERROR"):
        kiln.explain("NOT_AN_ERROR")


def test_explain_an_error_object():
    with pytest.raises(kiln.InvalidArgumentError) as caught:
        kiln.Target.parse("nonsense")
    [e] = kiln.explain(caught.value)
    assert e.name == "KILN_ERROR_INVALID_ARGUMENT"


def test_classes_are_also_the_builtin_kinds():
    assert issubclass(kiln.InvalidArgumentError, ValueError)
    assert issubclass(kiln.TimeoutError, builtins.TimeoutError)
    assert issubclass(kiln.OutOfMemoryError, MemoryError)
    for cls in (kiln.CompileError, kiln.OutOfMemoryError, kiln.IllegalAddressError, kiln.DriverNotFoundError,
                kiln.InvalidArgumentError, kiln.TimeoutError, kiln.CancelledError):
        assert issubclass(cls, kiln.Error)


def test_native_errors_carry_every_field():
    with pytest.raises(kiln.InvalidArgumentError) as caught:
        kiln.Target.parse("sm_")
    e = caught.value
    assert e.domain == "kiln" and e.code == 6 and not e.sticky
    assert e.call == "kiln_target_parse"
    assert "sm_" in str(e) and e.meaning
    assert repr(e).startswith("InvalidArgumentError(KILN_ERROR_INVALID_ARGUMENT")


def test_nvjitlink_codes_are_their_own_domain():
    found = kiln.explain("nvjitlink:1")
    assert [e.domain for e in found] == ["nvjitlink"] and found[0].name.startswith("NVJITLINK_ERROR")
    assert kiln.errors._class_of("nvjitlink", 1) is kiln.LinkError
    assert kiln.errors._class_of("kiln", 15) is kiln.LinkError
