from django import forms


class WatchlistForm(forms.Form):
    name = forms.CharField(max_length=80, strip=True)


class ItemAddForm(forms.Form):
    instrument = forms.IntegerField(required=False)
    asset = forms.CharField(max_length=16, required=False, strip=True)
    watchlist = forms.IntegerField(required=False)
    next = forms.CharField(required=False)

    def clean(self):
        data = super().clean()
        if not data.get("instrument") and not data.get("asset"):
            raise forms.ValidationError("Choose an instrument or an asset to add.")
        return data
