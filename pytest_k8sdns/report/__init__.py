"""Reports for people: the pytest-html extras, plots and the summary the report opens with."""
