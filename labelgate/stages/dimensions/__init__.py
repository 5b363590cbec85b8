"""Several label dimensions per row (task dimensions, issue 25 part 2): the spec's
``labels:`` section (`settings`), each dimension's agreement and probable label errors
(`stage`), and splits where a row flagged on one dimension follows that dimension's policy
(`splitting`)."""
