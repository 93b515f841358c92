"""For tests that send a real process a real Ctrl-C."""

import signal


def sigint_as_at_a_terminal() -> None:
    """``preexec_fn`` of such a process: in the child before it runs, SIGINT unblocked and given its default
    action, which Python turns into KeyboardInterrupt. A child inherits its parent's disposition and signal mask:
    a suite started as a background job of a non-interactive shell has SIGINT ignored, and a mask that blocks it
    would hold the signal pending; either way the child would not see the Ctrl-C the test sends, and would run to
    its end (exit 0, as two of these tests once did in a full run)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)
