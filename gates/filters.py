"""FilterSets shared by the portal's gates page and the gates API."""

import django_filters

from gates.models import CheckName, Gate, GateMode


class GateFilter(django_filters.FilterSet):
    mode = django_filters.ChoiceFilter(choices=GateMode.choices)
    check_name = django_filters.ChoiceFilter(choices=CheckName.choices, label="Check")

    class Meta:
        model = Gate
        fields = ["mode", "check_name"]
