from edgefer.allocator import command_of, preload_env

LIB = "libtcmalloc_minimal.so.4"


def test_the_subcommand_is_the_first_argument_that_is_not_an_option():
    assert command_of(["--verbose", "train", "--arch", "edge"]) == "train"
    assert command_of(["--version"]) is None


def test_preload_is_added_once_and_keeps_what_was_preloaded_before():
    env = preload_env({"PATH": "/bin", "LD_PRELOAD": "libother.so"}, LIB)
    assert env["LD_PRELOAD"] == f"{LIB} libother.so"
    assert env["PATH"] == "/bin" and env["EDGEFER_ALLOCATOR"] == "tcmalloc"
    assert preload_env(env, LIB) is None  # the re-executed process does not loop


def test_no_restart_when_turned_off_already_preloaded_or_not_installed():
    assert preload_env({"EDGEFER_ALLOCATOR": "system"}, LIB) is None
    assert preload_env({"LD_PRELOAD": "/usr/lib/libtcmalloc.so.4"}, LIB) is None
    assert preload_env({}, None) is None
