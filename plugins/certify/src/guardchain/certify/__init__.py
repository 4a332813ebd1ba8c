"""guardchain-certify: certification as a plugin member.

``guardchain certify`` runs a baseline, an edit under the guard chain, and paired evaluations through the kernel's
one orchestrator (:mod:`guardchain.core.runner`, :mod:`guardchain.core.guarded_edit`), decides gates from the
published policy (:mod:`.policy`), and writes a certificate (:mod:`.certificate`) that ``guardchain verify``
(:mod:`.verify`) re-derives from its recorded measurements. Both commands reach the CLI through the
``guardchain_register_commands`` hook, exactly as a third party's commands would; the ``metric_gate`` guard
(:mod:`.metric_gate`) makes any registered metric a gate, in a certification or in any chain file.
"""
