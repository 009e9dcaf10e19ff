from django import forms
from django.contrib import admin
from django.db.models import Count

from apps.glossary.models import FACET_FIELDS, Term


class TermForm(forms.ModelForm):
    # Synonyms as "CVD, cumulative delta" rather than raw JSON.
    synonyms = forms.CharField(required=False, help_text="Comma-separated; used by search.",
                               widget=forms.TextInput(attrs={"size": 80}))

    class Meta:
        model = Term
        fields = ("title", "slug", "category", "short", "synonyms", "metric", "related", *FACET_FIELDS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["synonyms"] = ", ".join(self.instance.synonyms or [])

    def clean_synonyms(self) -> list[str]:
        return [s.strip() for s in self.cleaned_data["synonyms"].split(",") if s.strip()]


class HasMetricFilter(admin.SimpleListFilter):
    title = "metric"
    parameter_name = "has_metric"

    def lookups(self, request, model_admin):
        return (("yes", "Computed metric"), ("no", "Concept only"))

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(metric="")
        if self.value() == "no":
            return queryset.filter(metric="")
        return queryset


@admin.register(Term)
class TermAdmin(admin.ModelAdmin):
    form = TermForm
    list_display = ("title", "slug", "category", "metric", "related_count", "updated_at")
    list_filter = ("category", HasMetricFilter)
    search_fields = ("title", "slug", "synonyms_text", "short", "metric", "body_text")
    prepopulated_fields = {"slug": ("title",)}
    filter_horizontal = ("related",)
    readonly_fields = ("source_path", "updated_at")
    ordering = ("title",)
    fieldsets = (
        (None, {
            "fields": ("title", "slug", "category", "short", "synonyms", "metric", "related"),
            "description": "Terms loaded from apps/glossary/terms/*.md are overwritten by <code>load_glossary</code>: "
                           "edit the file for a lasting change.",
        }),
        ("Sections (Markdown; {{ SETTING }} placeholders are filled at render time)", {"fields": FACET_FIELDS}),
        ("Source", {"fields": ("source_path", "updated_at")}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(related_total=Count("related"))

    @admin.display(description="related", ordering="related_total")
    def related_count(self, obj) -> int:
        return obj.related_total
