"""A policy plugin that remembers: a test of what a policy instance may keep.

It counts the messages it has judged in a module global and refuses every
message after the first with `550 5.7.1 saw N message(s) before this one`.
Built twice by plugins-py/build.sh from this one file:

* `counting-policy` (world `policy-plugin`): the host gives every
  `check-message` a fresh instance, so the count never carries over and
  every message is accepted;
* `counting-policy-stateful` (world `stateful-policy-plugin`): it exports
  `policy-state`, declaring that it keeps state, so the host reuses its
  instances and the second message is refused.

Standard library only; no I/O, no clock.
"""

from wit_world import exports
from wit_world.exports.plugin_info import Info
from wit_world.exports.policy import Refusal, Verdict_Accept, Verdict_Reject

SEEN = 0


class PluginInfo(exports.PluginInfo):
    def describe(self) -> Info:
        return Info(
            name="counting-policy",
            version="0.1.0",
            description="test policy that refuses every message after the first it has seen",
        )


class Policy(exports.Policy):
    def check_config(self, config) -> None:
        return None

    def check_sender(self, reverse_path, parameters, config):
        return Verdict_Accept()

    def check_recipient(self, reverse_path, recipient, config):
        return Verdict_Accept()

    def check_message(self, envelope, content, config):
        global SEEN
        seen = SEEN
        SEEN += 1
        if seen == 0:
            return Verdict_Accept()
        return Verdict_Reject(
            Refusal(code=550, enhanced="5.7.1", reason="saw %d message(s) before this one" % seen)
        )


if hasattr(exports, "PolicyState"):

    class PolicyState(exports.PolicyState):
        def keeps(self) -> str:
            return "how many messages it has judged"
